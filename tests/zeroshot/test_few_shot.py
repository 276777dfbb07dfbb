import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # shares a ~30 s trained stage-1 fixture


def _few_shot(model, cohort, tmp_path, **kw):
    from mstar.zeroshot.config import FewShotConfig
    from mstar.zeroshot.few_shot import few_shot

    cfg = FewShotConfig(stage1="model", prompts="synthetic_cancer_type", manifest=str(cohort["manifest"]),
                        features=str(cohort["features"]), out=str(tmp_path), **kw)
    return few_shot(cfg, model=model, progress=False)


def test_few_shot_improves_with_k(trained_model, zs_cohort, tmp_path):
    from mstar.zeroshot.config import METHODS

    result = _few_shot(trained_model, zs_cohort, tmp_path, shots=[1, 8, 64], runs=8, name="fs")
    assert result["shots"] == [1, 8] and result["skipped_shots"] == [64]  # 18 training cases per class
    runs = result["runs"]
    assert len(runs) == 3 * 2 * 8 and set(runs["method"]) == set(METHODS)
    mean = runs.groupby(["method", "k"])[["balanced_accuracy", "auc_macro"]].mean()
    for method in METHODS:
        assert mean.loc[(method, 8), "auc_macro"] > mean.loc[(method, 1), "auc_macro"], method
    for method in ("simpleshot", "linear_probe"):
        assert mean.loc[(method, 8), "balanced_accuracy"] > mean.loc[(method, 1), "balanced_accuracy"] + 0.03
        assert mean.loc[(method, 8), "balanced_accuracy"] > 0.75  # chance is 1/3
    # every method saw the same support draw in a run; draws differ between runs
    first = runs[(runs["k"] == 1) & (runs["run"] == 0)]["support"]
    assert first.nunique() == 1
    assert runs[(runs["k"] == 1) & (runs["method"] == "simpleshot")]["support"].nunique() > 1

    run = tmp_path / "fewshot" / "fs"
    doc = json.loads((run / "metrics.json").read_text())
    entry = doc["test"]["linear_probe/k8/balanced_accuracy"]
    assert entry["iqr_low"] <= entry["value"] <= entry["iqr_high"] and entry["runs"] == 8 and entry["n"] == 18
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary["metric"]) == {"balanced_accuracy", "f1_weighted", "auc_macro"}
    assert (run / "figures" / "fewshot_balanced_accuracy.png").stat().st_size > 1000


def test_few_shot_is_reproducible(trained_model, zs_cohort, tmp_path):
    kw = dict(shots=[2], runs=2, methods=["simpleshot", "text_prototypes"])
    a = _few_shot(trained_model, zs_cohort, tmp_path, name="a", **kw)
    b = _few_shot(trained_model, zs_cohort, tmp_path, name="b", **kw)
    pd.testing.assert_frame_equal(a["runs"], b["runs"])
