"""Stage-2 inputs: the tiny cohort's tiles with timm:test_vit features, and stage-1-format aggregators."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ENCODER = "timm:test_vit"
FEATURES = "timm-test_vit"


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here on one CPU thread (tests/conftest.py: one_thread)."""


@pytest.fixture(scope="session")
def st_work(test_vit_work: Path) -> Path:
    """The tiny cohort's tiles + ``features/timm-test_vit`` (tests/conftest.py: test_vit_work)."""
    return test_vit_work


def save_random_stage1(path: Path, in_dim: int = 64, dim: int = 16, seed: int = 0) -> Path:
    """A randomly initialised stage-1 checkpoint (proj Linear(in_dim, dim) + TransMIL trunk)."""
    from mstar.models.transmil import TransMIL
    from mstar.models.upstream import to_stage1_state_dict

    torch.manual_seed(seed)
    model = TransMIL(in_dim=in_dim, dim=dim, input_proj="linear")
    torch.save({"model_state_dict": {k: v.detach().clone() for k, v in to_stage1_state_dict(model).items()}},
               path)
    return path


@pytest.fixture(scope="session")
def random_stage1(tmp_path_factory) -> Path:
    return save_random_stage1(tmp_path_factory.mktemp("stage1") / "random_stage1.pt")
