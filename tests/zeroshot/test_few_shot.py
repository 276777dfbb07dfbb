import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # shares a ~30 s trained stage-1 fixture


def test_few_shot_improves_with_k(trained_model, zs_cohort, tmp_path):
    from mstar.zeroshot.few_shot import METHODS, few_shot

    result = few_shot(trained_model, "synthetic_cancer_type", zs_cohort["manifest"], zs_cohort["features"],
                      shots=(1, 8, 64), runs=8, out=tmp_path, name="fs", show_progress=False)
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
    from mstar.zeroshot.few_shot import few_shot

    kw = dict(shots=(2,), runs=2, methods=("simpleshot", "text_prototypes"), out=tmp_path, show_progress=False)
    a = few_shot(trained_model, "synthetic_cancer_type", zs_cohort["manifest"], zs_cohort["features"], name="a", **kw)
    b = few_shot(trained_model, "synthetic_cancer_type", zs_cohort["manifest"], zs_cohort["features"], name="b", **kw)
    pd.testing.assert_frame_equal(a["runs"], b["runs"])
