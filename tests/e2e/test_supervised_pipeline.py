"""Slides to metrics on a small synthetic cohort: cancer type is learnt, survival beats chance."""

import pytest

from mstar.data.synthetic import SynthConfig, make_cohort
from mstar.features.extract import extract_features
from mstar.slide.batch import tile_many
from mstar.tasks.config import TrainConfig
from mstar.tasks.runner import train_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort_features(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    make_cohort(root / "cohort", SynthConfig(cases=45, seed=1), workers=2, show_progress=False)
    tile_many([root / "cohort" / "slides"], root / "work", workers=2, show_progress=False)
    extract_features(root / "work", "timm:test_vit", batch_size=64, device="cpu", show_progress=False)
    return root


def _train(root, task, manifest):
    cfg = TrainConfig(task=task, manifest=str(root / "cohort" / "manifests" / manifest),
                      features=str(root / "work" / "features" / "timm-test_vit"), out=str(root / "runs"),
                      epochs=40, lr=1e-3, batch_size=8, patience=15, bootstrap=500,
                      model_args={"dim": 64, "attn_dim": 32})
    return train_task(cfg, progress=False)["metrics"]


def test_cancer_type_is_learnt_from_slides(cohort_features):
    test = _train(cohort_features, "classify", "diagnosis.csv")["test"]
    assert test["auc_macro"]["value"] > 0.9 and test["balanced_accuracy"]["value"] > 0.7


def test_survival_ranks_patients_above_chance(cohort_features):
    metrics = _train(cohort_features, "survival", "survival.csv")
    assert metrics["test"]["c_index"]["value"] > 0.6
