"""Run these small-tensor tests on one CPU thread (restored afterwards).

The models' many tiny matmuls pay an OpenMP synchronisation per op; on a shared, loaded machine that costs
milliseconds each and made this folder ~10x slower with 2 threads than with one. Results do not depend on it.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here on one CPU thread (tests/conftest.py: one_thread)."""
