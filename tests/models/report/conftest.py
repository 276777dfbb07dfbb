"""Report-model tests run their tiny models on one CPU thread (much faster than 2 contended threads)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here on one CPU thread (tests/conftest.py: one_thread)."""
