"""One tiny multimodal cohort, one stage-1 model trained on it (40 steps) and three random-init models."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch


@pytest.fixture(scope="session")
def zs_cohort(tmp_path_factory) -> dict:
    from tests.zeroshot._cohort import make_cohort

    return make_cohort(tmp_path_factory.mktemp("zs_cohort"), n_cases=90, signal=2.0, nuisance=1.0)


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (2 threads on a busy 2-core machine: 50x slower training)."""
    with _threads(1):
        yield


@pytest.fixture(scope="session")
def trained_model(zs_cohort):
    from tests.zeroshot._cohort import build_model, train_stage1

    with _threads(1):
        return train_stage1(build_model(zs_cohort, seed=0), zs_cohort, steps=40)


@pytest.fixture(scope="session")
def random_models(zs_cohort, trained_model):
    from tests.zeroshot._cohort import build_model

    return [build_model(zs_cohort, seed=s, text=copy.deepcopy(trained_model.text)).eval() for s in (1, 2, 3)]


@pytest.fixture(scope="session")
def trained_checkpoint(trained_model, tmp_path_factory):
    """The trained model saved as ``mstar pretrain`` saves it."""
    from mstar.pretrain.stage1_model import save_stage1

    return save_stage1(tmp_path_factory.mktemp("ckpt") / "stage1.pt", trained_model)
