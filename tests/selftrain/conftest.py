"""Stage-2 inputs: the tiny cohort's tiles with timm:test_vit features, and stage-1-format aggregators."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

ENCODER = "timm:test_vit"
FEATURES = "timm-test_vit"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def st_work(tiny_tiles: Path, tmp_path_factory) -> Path:
    """A work folder: the tiny cohort's tiles + ``features/timm-test_vit`` (random-init test_vit, 64-d)."""
    from mstar.features.extract import extract_features

    out = tmp_path_factory.mktemp("st_work")
    shutil.copytree(tiny_tiles / "tiles", out / "tiles")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extract_features(out, ENCODER, workers=0, device="cpu", show_progress=False)
    finally:
        torch.set_num_threads(before)
    return out


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
