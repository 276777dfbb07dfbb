"""Multimodal survival through the supervised runner: fusion beats either modality where both carry signal;
every fusion model trains end to end; folds, CLI, errors, and (with ../shared/data) the real TCGA tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mstar.errors import MstarError
from mstar.eval.compare import compare_runs
from mstar.eval.results import read_metrics_json
from mstar.tasks.multimodal import train_multimodal
from mstar.tasks.multimodal_config import MultimodalConfig
from tests.tasks._omics import complementary_cohort

FAST = dict(epochs=20, lr=1e-3, batch_size=16, patience=20, bootstrap=200)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return complementary_cohort(tmp_path_factory.mktemp("mm"), n_cases=200)


def _cfg(tmp_path, paths, model, **kw):
    base = dict(model=model, manifest=str(paths["manifest"]), features=str(paths["features"]),
                rna=str(paths["rna"]), out=str(tmp_path / "runs"), name=model, **FAST)
    return MultimodalConfig(**{**base, **kw})


@pytest.mark.slow
def test_fusion_beats_both_unimodal_baselines(tmp_path, cohort):
    """Risk = a + b, slides show a, RNA shows b: MCAT and late fusion > SNN (RNA only) and > ABMIL (slides
    only).

    Each model at the learning rate its validation C-index preferred in {2e-4, 1e-3}; the baselines at the
    setting where they did best (20 epochs of 16 bags), MCAT as upstream (lr 2e-4), 30 epochs of 8 bags.
    """
    test = {}
    own = {"snn": {"features": ""}, "abmil": {}, "late": {},
           "mcat": {"lr": 2e-4, "epochs": 30, "batch_size": 8, "patience": 30}}
    for model, kw in own.items():
        result = train_multimodal(_cfg(tmp_path, cohort, model, **kw), progress=False)
        test[model] = result["metrics"]["test"]["c_index"]
    for entry in test.values():
        assert entry["n"] == 60 and entry["ci_low"] < entry["value"] < entry["ci_high"]
    assert test["snn"]["value"] > 0.65 and test["abmil"]["value"] > 0.55  # each modality alone carries signal
    best_single = max(test["snn"]["value"], test["abmil"]["value"])
    assert test["mcat"]["value"] > best_single and test["late"]["value"] > best_single
    # Paired bootstrap (both models on the same resampled test patients): with 60 test patients the gain over
    # the weaker modality (slides) is significant; over the RNA-only SNN (+0.03) it is not at this size. The
    # significant gain over both is shown on 1,332 `mstar synth` cases (benchmarks/multimodal_synth.py).
    runs = tmp_path / "runs" / "multimodal-survival"
    for fusion in ("mcat", "late"):
        diff = compare_runs(runs / fusion, runs / "abmil",
                            n_resamples=500)["metrics"]["c_index"]["difference"]
        assert diff["ci_low"] > 0, (fusion, diff)


@pytest.mark.slow
@pytest.mark.parametrize("model,args", [("mcat", {}), ("porpoise", {}), ("motcat", {}),
                                        ("cmta", {"dim": 32})])
def test_every_fusion_model_trains_and_writes_the_run_directory(tmp_path, model, args):
    paths = complementary_cohort(tmp_path / "c", n_cases=40, seed=1)
    result = train_multimodal(_cfg(tmp_path, paths, model, epochs=2, batch_size=8, model_args=args),
                              progress=False)
    run = tmp_path / "runs" / "multimodal-survival" / model
    assert result["run"] == str(run)
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["split"]) == {"val", "test"} and np.isfinite(preds["risk"]).all()
    assert (run / "figures" / "km_test.png").exists() and (run / "log.csv").exists()
    omics = json.loads((run / "omics.json").read_text())
    if model == "porpoise":
        assert omics["mode"] == "full" and omics["group_sizes"] == [24]
    else:
        assert omics["mode"] == "groups" and [g["genes_matched"] for g in omics["groups"]] == [4] * 6
    blob = torch.load(run / "units" / "fixed" / "model.pt", weights_only=False)
    train = pd.read_csv(paths["manifest"]).query("split == 'train'")["ID"]
    first = pd.concat([pd.read_csv(paths["rna"] / f"{c}.csv")["Value"] for c in train], axis=1).iloc[0]
    assert (blob["info"]["omics_scaler"]["mean"][0]
            == pytest.approx(first.mean(), abs=1e-4))  # training cases only


def test_folds_give_per_fold_c_index_and_genomic_only_snn_needs_no_slides(tmp_path):
    paths = complementary_cohort(tmp_path / "c", n_cases=60, seed=2)
    ids = pd.read_csv(paths["manifest"])["ID"].tolist()
    folds = tmp_path / "splits"
    folds.mkdir()
    for k in range(2):
        val = ids[k::2][:20]
        pd.DataFrame({"train": pd.Series([c for c in ids if c not in val]), "val": pd.Series(val)}).to_csv(
            folds / f"splits_{k}.csv")
    result = train_multimodal(_cfg(tmp_path, paths, "snn", features="", folds=str(folds), epochs=3),
                              progress=False)
    entry = read_metrics_json(tmp_path / "runs" / "multimodal-survival" / "snn"
                              / "metrics.json")["test"]["c_index"]
    assert len(entry["per_unit"]) == 2 and entry["n"] == 40 and entry["sd"] >= 0
    assert entry["value"] == pytest.approx(np.mean(entry["per_unit"]))
    assert result["meta"]["units"] == ["fold0", "fold1"]
    from mstar.tasks.evaluate import EvaluateConfig, evaluate_run

    with pytest.raises(MstarError, match="snn: a multimodal-survival run; `mstar evaluate` applies classify"):
        evaluate_run(EvaluateConfig(run=result["run"], manifest=str(paths["manifest"]),
                                    features=str(paths["features"])))


def test_cli_trains_and_reports_signature_matches(tmp_path):
    from typer.testing import CliRunner

    import mstar.cli.multimodal  # noqa: F401  (registers the command)
    from mstar.cli import app

    paths = complementary_cohort(tmp_path / "c", n_cases=40, seed=3)
    args = ["train", "multimodal-survival", "--model", "snn", "--manifest", str(paths["manifest"]),
            "--rna", str(paths["rna"]), "--omics", "groups", "--epochs", "2", "--out", str(tmp_path / "runs"),
            "--set", "bootstrap=50"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Oncogenes: 4 of 4 genes matched" in result.output and "test     c_index" in result.output
    bad = CliRunner().invoke(app, [*args[:6], "--epochs", "1"])
    assert isinstance(bad.exception, MstarError) and "'rna' is required" in str(bad.exception)


def test_missing_inputs_are_clear_errors(tmp_path):
    paths = complementary_cohort(tmp_path / "c", n_cases=40, seed=4)
    (paths["features"] / "S005.h5").unlink()
    with pytest.raises(MstarError, match="no features for 1 slide"):
        train_multimodal(_cfg(tmp_path, paths, "late", epochs=1), progress=False)
    (paths["rna"] / "P003.csv").unlink()
    with pytest.raises(MstarError, match=r"no RNA file for 1 case\(s\): P003 \(P003.csv\)"):
        train_multimodal(_cfg(tmp_path, paths, "snn", features="", epochs=1), progress=False)
    result = train_multimodal(_cfg(tmp_path, paths, "snn", features="", epochs=1, skip_missing=True,
                                   bootstrap=20), progress=False)
    assert "P003" in result["meta"]["dropped_cases"]
    with pytest.raises(MstarError, match="is not a multimodal survival model"):
        _cfg(tmp_path, paths, "transmil").validate()
    with pytest.raises(MstarError, match="'snnn' is not a multimodal survival model"):  # not "needs features"
        _cfg(tmp_path, paths, "snnn", features="").validate()
    with pytest.raises(MstarError, match="'features' is required"):
        _cfg(tmp_path, paths, "mcat", features="").validate()


@pytest.mark.shared_data
def test_genomic_only_snn_on_one_tcga_fold(tmp_path, shared_data):
    data = shared_data / "tcga_omics"
    table = data / "tcga_gbmlgg.csv.gz"
    if not table.exists():
        pytest.skip(f"{table} is absent")
    folds = tmp_path / "folds"
    folds.mkdir()
    (folds / "splits_0.csv").write_bytes((data / "splits" / "gbmlgg" / "splits_0.csv").read_bytes())
    result = train_multimodal(MultimodalConfig(model="snn", manifest=str(table), rna=str(table),
                                               folds=str(folds), out=str(tmp_path / "runs"), epochs=10,
                                               lr=2e-4, batch_size=32, bootstrap=100), progress=False)
    entry = result["metrics"]["test"]["c_index"]
    assert entry["n"] == 114 and entry["value"] > 0.5
    assert result["omics"]["modalities"] == ["mut", "cnv", "rnaseq"] and result["omics"]["cases"] == 569


def _demo_layout(root):
    """The demo's cohort files (manifests, per-case RNA, signatures) without slides, plus 64-d bags whose
    patches shift with the tumour fraction (the demo's random-init encoder features are weakly
    informative)."""
    from mstar.data.synthetic.cohort import _manifests
    from mstar.data.synthetic.rna import expression_table, signature_table
    from mstar.data.synthetic.truth import draw_cohort_truth
    from tests.tasks._bags import write_bag

    cases = draw_cohort_truth(60, 3, seed=0)
    cohort = root / "cohort"
    (cohort / "rna" / "cases").mkdir(parents=True)
    (cohort / "manifests").mkdir()
    _manifests(cases, cohort)
    expr = expression_table(cases, 7)
    for case in expr.columns:
        pd.DataFrame({"Gene": expr.index, "Value": expr[case].to_numpy()}).to_csv(
            cohort / "rna" / "cases" / f"{case}.csv", index=False)
    signature_table(11).to_csv(cohort / "signatures.csv", index=False)
    rng = np.random.default_rng(0)
    for c in cases:
        for s in c.slides:
            feats = rng.normal(size=(int(rng.integers(10, 30)), 64))
            feats[:, :8] += 2 * c.tumour_fraction
            write_bag(root / "work" / "features" / "timm-test_vit" / f"{s.slide_id}.h5", feats)


@pytest.mark.slow
def test_demo_step_trains_snn_abmil_mcat_and_late_fusion(tmp_path):
    import time

    from mstar.demo.steps import step_multimodal

    _demo_layout(tmp_path)
    start = time.perf_counter()
    result = step_multimodal(tmp_path)
    seconds = time.perf_counter() - start
    assert list(result["test"]) == ["snn", "abmil", "mcat", "late"]
    for entry in result["test"].values():
        assert 0 <= entry["ci_low"] <= entry["value"] <= entry["ci_high"] <= 1 and entry["n"] >= 8
    assert (result["summary"].startswith("test C-index: SNN (RNA)")
            and "late fusion (both)" in result["summary"])
    print(result["summary"], f"{seconds:.0f} s")
