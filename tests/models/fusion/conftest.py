"""Run these small-tensor tests on one CPU thread (restored afterwards).

The models' many tiny matmuls pay an OpenMP synchronisation per op; on a shared, loaded machine that costs
milliseconds each and made this folder ~10x slower with 2 threads than with one. Results do not depend on it.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
