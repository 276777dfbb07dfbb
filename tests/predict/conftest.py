"""`mstar predict` inputs: the tiny cohort's test_vit features and small runs trained on them."""

from __future__ import annotations

from pathlib import Path

import pytest

ENCODER = "timm:test_vit"


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here on one CPU thread (tests/conftest.py: one_thread)."""


def _train(task: str, manifest: Path, features: Path, out: Path, **extra) -> Path:
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    cfg = TrainConfig(task=task, manifest=str(manifest), features=str(features), out=str(out), epochs=2,
                      bootstrap=10, model_args={"dim": 16, "attn_dim": 8}, n_bins=2, **extra)
    return Path(train_task(cfg, progress=False)["run"])


@pytest.fixture(scope="session")
def runs(tiny_cohort: Path, test_vit_work: Path, tmp_path_factory) -> dict:
    """A classification run with two units (an ensemble of seeds) and a survival run."""
    out = tmp_path_factory.mktemp("runs")
    feats = test_vit_work / "features" / "timm-test_vit"
    from mstar.tasks.multimodal import train_multimodal
    from mstar.tasks.multimodal_config import MultimodalConfig

    mm = MultimodalConfig(manifest=str(tiny_cohort / "manifests" / "multimodal_survival.csv"),
                          features=str(feats), rna=str(tiny_cohort / "rna" / "cases"), out=str(out), epochs=2,
                          bootstrap=10, n_bins=2, model="mcat", runs=2)
    import pandas as pd

    cv = pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv").drop(columns="fold")
    order = cv.groupby("label").cumcount()  # 2-fold CV: each fold tests one case of each type
    cv["fold1"] = ["test" if o == 0 else "train" for o in order]
    cv["fold2"] = ["test" if o == 1 else "train" for o in order]
    cv.to_csv(out / "diagnosis_cv.csv", index=False)
    return {"classify": _train("classify", tiny_cohort / "manifests" / "diagnosis.csv", feats, out, runs=2),
            "cv": _train("classify", out / "diagnosis_cv.csv", feats, out, val_fraction=0.34),
            "cv_manifest": out / "diagnosis_cv.csv",
            "multimodal": Path(train_multimodal(mm, progress=False)["run"]),
            "survival": _train("survival", tiny_cohort / "manifests" / "survival.csv", feats, out),
            "features": feats}
