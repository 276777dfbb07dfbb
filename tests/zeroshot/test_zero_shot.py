import json

import numpy as np
import pandas as pd
import pytest

from mstar.zeroshot.scoring import DEFAULT_JS

pytestmark = pytest.mark.slow  # shares a ~30 s trained stage-1 fixture


def _run(model, cohort, tmp_path, name, **kw):
    from mstar.zeroshot.config import ZeroShotConfig
    from mstar.zeroshot.zero_shot import zero_shot

    cfg = ZeroShotConfig(stage1=f"model-{id(model)}", prompts="synthetic_cancer_type",
                         manifest=str(cohort["manifest"]), features=str(cohort["features"]),
                         out=str(tmp_path), name=name, bootstrap=200, heatmaps=0, **kw)
    return zero_shot(cfg, model=model, progress=False)


def test_zero_shot_beats_chance_and_random_init(trained_model, random_models, zs_cohort, tmp_path):
    trained = _run(trained_model, zs_cohort, tmp_path, "trained")
    test = trained["metrics"]["test"]
    slide = test["slide/balanced_accuracy"]
    assert slide["n"] == 18 and slide["chance"] == pytest.approx(1 / 3)
    assert slide["value"] >= 0.75 and slide["ci_low"] > 1 / 3  # well above chance, CI included
    assert test["slide/auc_macro"]["value"] >= 0.85
    random = [_run(m, zs_cohort, tmp_path,
                   f"random{i}")["metrics"]["test"]["slide/balanced_accuracy"]["value"]
              for i, m in enumerate(random_models)]
    assert slide["value"] > np.mean(random) + 0.25 and slide["value"] > max(random)


def test_zero_shot_outputs_and_j_chosen_on_validation(trained_model, zs_cohort, tmp_path):
    result = _run(trained_model, zs_cohort, tmp_path, "files")
    run = tmp_path / "zeroshot" / "files"
    doc = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        for j in DEFAULT_JS:
            for metric in ("balanced_accuracy", "f1_weighted", "auc_macro"):
                entry = doc[split][f"patch_top{j}/{metric}"]
                assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    chosen = result["chosen_j"]
    assert doc["_meta"]["j_source"] == "val" and doc["test"]["patch/balanced_accuracy"]["j"] == chosen
    val_bacc = {j: doc["val"][f"patch_top{j}/balanced_accuracy"]["value"] for j in DEFAULT_JS}
    assert val_bacc[chosen] == max(val_bacc.values())
    assert (doc["test"]["patch/balanced_accuracy"]["value"]
            == doc["test"][f"patch_top{chosen}/balanced_accuracy"]["value"])
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 36 and set(pred["split"]) == {"val", "test"}
    assert {"slide_predicted", "patch_predicted", "slide_prob_BRCA", "patch_prob_KIRC"} <= set(pred.columns)
    probs = pred[[f"slide_prob_{c}" for c in ("BRCA", "LUSC", "KIRC")]].to_numpy()
    assert np.allclose(probs.sum(1), 1)
    test = pred[pred["split"] == "test"]
    assert ((test["slide_predicted"] == test["label"]).mean()
            == pytest.approx(doc["test"]["slide/accuracy"]["value"]))
    for fig in ("confusion_slide.png", "confusion_patch.png", "topj.png"):
        assert (run / "figures" / fig).stat().st_size > 1000


def test_fixed_top_j_and_no_validation_split(trained_model, zs_cohort, tmp_path):
    from mstar.errors import MstarError

    table = pd.read_csv(zs_cohort["manifest"])
    table = table[table["fold"] != "val"]
    table.to_csv(tmp_path / "noval.csv", index=False)
    cohort = {**zs_cohort, "manifest": tmp_path / "noval.csv"}
    with pytest.raises(MstarError, match="--top-j"):
        _run(trained_model, cohort, tmp_path, "noval")
    result = _run(trained_model, cohort, tmp_path, "noval", top_j=7)
    assert result["chosen_j"] == 7 and result["j_source"] == "--top-j"
    assert "val" not in result["metrics"] and "patch_top7/balanced_accuracy" in result["metrics"]["test"]


def test_zero_shot_from_rna_and_report_embeddings(trained_model, random_models, zs_cohort, tmp_path):
    """Without slides: each case's RNA (or report) embedding against the class prompts."""
    gene = _run(trained_model, zs_cohort, tmp_path, "gene", modality="gene", rna=str(zs_cohort["rna"]))
    entry = gene["metrics"]["test"]["gene/balanced_accuracy"]
    assert entry["n"] == 18 and entry["chance"] == pytest.approx(1 / 3)
    random = [_run(m, zs_cohort, tmp_path, f"gene-random{i}", modality="gene", rna=str(zs_cohort["rna"]))
              ["metrics"]["test"]["gene/balanced_accuracy"]["value"] for i, m in enumerate(random_models)]
    assert entry["value"] >= 0.7 and entry["value"] > max(random)
    table = pd.read_csv(tmp_path / "zeroshot" / "gene" / "predictions.csv")
    assert list(table.columns[:4]) == ["split", "case", "label", "gene_predicted"]
    assert len(table) == 36  # val + test
    report = _run(trained_model, zs_cohort, tmp_path, "report", modality="report",
                  reports=str(zs_cohort["reports"]))
    assert report["metrics"]["test"]["report/balanced_accuracy"]["value"] >= 0.9  # reports name the type
