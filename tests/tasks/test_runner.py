import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from mstar.errors import MstarError
from mstar.eval.results import read_metrics_json
from mstar.tasks.config import TrainConfig
from mstar.tasks.runner import train_task
from tests.tasks._bags import classification_cohort, survival_cohort

FAST = dict(epochs=12, lr=1e-3, batch_size=8, patience=12, bootstrap=200,
            model_args={"dim": 32, "attn_dim": 16, "dropout": 0.0})


def _cfg(tmp_path, manifest, features, **kw):
    return TrainConfig(**{"manifest": str(manifest), "features": str(features), "out": str(tmp_path / "runs"),
                          **FAST, **kw})


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory):
    return classification_cohort(tmp_path_factory.mktemp("cls"))


def test_classification_recovers_the_planted_classes(tmp_path, cls_data):
    result = train_task(_cfg(tmp_path, *cls_data, task="classify"), progress=False)
    run = tmp_path / "runs" / "classify" / "manifest-abmil"
    metrics = read_metrics_json(run / "metrics.json")
    test = metrics["test"]["auc_macro"]
    assert test["value"] > 0.9 and test["ci_low"] <= test["value"] <= test["ci_high"] and test["n"] == 12
    assert {"balanced_accuracy", "f1_weighted", "auc_weighted"} <= set(metrics["test"])
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["split"]) == {"val", "test"}
    assert preds[["prob_A", "prob_B", "prob_C"]].sum(axis=1).round(5).eq(1).all()
    for fig in ("roc_test.png", "confusion_test.png", "training_curves.png"):
        assert (run / "figures" / fig).stat().st_size > 1000
    assert (run / "config.yaml").exists() and (run / "units" / "fixed" / "model.pt").exists()
    assert result["meta"]["selection_metric"] == "auc_macro"


def test_cpu_bf16_training_under_auto_where_the_cpu_has_it(tmp_path, cls_data, monkeypatch):
    from mstar.utils.cpu_precision import pinned_cpu_precision

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    probs = {}
    for want, resolved in (("bf16", "bf16-mixed"), ("fp32", "32-true")):
        with pinned_cpu_precision(want):
            train_task(_cfg(tmp_path / want, *cls_data, task="classify", epochs=2), progress=False)
        run = tmp_path / want / "runs" / "classify" / "manifest-abmil"
        assert json.loads((run / "run.json").read_text())["training_precision"] == resolved
        probs[want] = pd.read_csv(run / "predictions.csv")["prob_A"].to_numpy()
    diff = abs(probs["bf16"] - probs["fp32"])
    assert 0 < diff.max() < 0.05  # bf16 really ran, and stayed close to fp32


def test_a_finished_run_resumes_without_retraining(tmp_path, cls_data):
    cfg = _cfg(tmp_path, *cls_data, task="classify", epochs=2)
    train_task(cfg, progress=False)
    model = tmp_path / "runs" / "classify" / "manifest-abmil" / "units" / "fixed" / "model.pt"
    stamp = model.stat().st_mtime_ns
    train_task(cfg, progress=False)
    assert model.stat().st_mtime_ns == stamp
    train_task(cfg, overwrite=True, progress=False)
    assert model.stat().st_mtime_ns != stamp


def test_cross_validation_and_repeated_runs_report_mean_and_sd(tmp_path):
    manifest, features = classification_cohort(tmp_path / "cv", n_cases=45, folds=3)
    train_task(_cfg(tmp_path, manifest, features, task="classify", epochs=3, runs=2), progress=False)
    run = tmp_path / "runs" / "classify" / "manifest-abmil"
    entry = read_metrics_json(run / "metrics.json")["test"]["auc_macro"]
    assert len(entry["per_unit"]) == 6 and entry["sd"] >= 0
    assert entry["value"] == pytest.approx(sum(entry["per_unit"]) / 6)
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["unit"]) == {f"fold{f}-run{r}" for f in (1, 2, 3) for r in (0, 1)}
    # validation was carved from each fold's training rows, never from its test rows
    for unit, g in preds.groupby("unit"):
        assert not set(g[g.split == "val"]["case"]) & set(g[g.split == "test"]["case"])


def test_survival_orders_patients_by_planted_risk(tmp_path):
    manifest, features = survival_cohort(tmp_path / "surv")
    train_task(_cfg(tmp_path, manifest, features, task="survival", epochs=30, lr=5e-3, patience=30),
               progress=False)
    run = tmp_path / "runs" / "survival" / "survival-abmil"
    metrics = read_metrics_json(run / "metrics.json")
    assert metrics["test"]["c_index"]["value"] > 0.6
    preds = pd.read_csv(run / "predictions.csv")
    assert {"risk", "S_1", "S_4", "time", "event", "bin"} <= set(preds.columns)
    assert (run / "figures" / "km_test.png").exists()
    info_edges = json.loads((run / "metrics.json").read_text())["_meta"]
    assert info_edges["selection_metric"] == "c_index"


def test_upstream_protocol_is_explicit_and_labelled(tmp_path, cls_data):
    result = train_task(_cfg(tmp_path, *cls_data, task="classify", epochs=2, protocol="upstream"),
                        progress=False)
    assert "val+test" in result["metrics"] and "optimistic" in result["meta"]["note"]


def test_missing_features_are_listed_or_skipped(tmp_path, cls_data):
    manifest, features = cls_data
    table = pd.read_csv(manifest)
    table.loc[0, "slide"] = "NOPE-1"
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(MstarError, match="NOPE-1.*--skip-missing"):
        train_task(_cfg(tmp_path, bad, features, task="classify", epochs=1), progress=False)
    result = train_task(_cfg(tmp_path, bad, features, task="classify", epochs=1, skip_missing=True),
                        progress=False)
    assert result["meta"]["dropped_cases"] == ["C000"]


def test_single_class_validation_split_is_a_clear_error(tmp_path, cls_data):
    manifest, features = cls_data
    table = pd.read_csv(manifest)
    table.loc[(table["fold"] == "val") & (table["label"] != "A"), "fold"] = "train"
    bad = tmp_path / "oneclass.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(MstarError, match="single class"):
        train_task(_cfg(tmp_path, bad, features, task="classify", epochs=1), progress=False)
    table["label"] = "A"  # the whole manifest: named, before any run folder exists
    table.to_csv(bad, index=False)
    with pytest.raises(MstarError, match=r"oneclass.csv: a single class \(\['A'\]\); classification needs"):
        train_task(_cfg(tmp_path, bad, features, task="classify", epochs=1, name="one"), progress=False)
    assert not (tmp_path / "runs" / "classify" / "one").exists()


def test_a_validation_split_without_one_of_three_classes_selects_on_the_classes_it_has(tmp_path, cls_data,
                                                                                      caplog):
    manifest, features = cls_data
    table = pd.read_csv(manifest)
    table.loc[(table["fold"] == "val") & (table["label"] == "C"), "fold"] = "train"
    bad = tmp_path / "noC.csv"
    table.to_csv(bad, index=False)
    result = train_task(_cfg(tmp_path, bad, features, task="classify", epochs=3), progress=False)
    log = pd.read_csv(tmp_path / "runs" / "classify" / "noC-abmil" / "log.csv")
    assert log["val_auc_macro"].between(0, 1).all()  # was -inf every epoch, then a TypeError
    assert result["metrics"]["test"]["auc_macro"]["value"] > 0.5
    assert "the validation split lacks classes ['C']" in caplog.text


def test_an_unbuildable_model_stops_before_the_run_folder_so_the_fixed_command_runs(tmp_path, cls_data):
    with pytest.raises(MstarError, match="nosuch"):
        train_task(_cfg(tmp_path, *cls_data, task="classify", epochs=1, model="nosuch", name="m"),
                   progress=False)
    assert not (tmp_path / "runs" / "classify" / "m").exists()
    result = train_task(_cfg(tmp_path, *cls_data, task="classify", epochs=1, name="m"), progress=False)
    assert not result.get("finished_before") and "test" in result["metrics"]
    record = json.loads((tmp_path / "runs" / "classify" / "m" / "run.json").read_text())
    assert (record["kind"], record["status"]) == ("classify", "finished")  # was "" for classify/survival


def test_evaluate_applies_a_run_to_an_external_cohort(tmp_path, cls_data, caplog):
    from mstar.eval.results import read_metrics_meta
    from mstar.tasks.evaluate import EvaluateConfig, evaluate_run

    train_task(_cfg(tmp_path, *cls_data, task="classify"), progress=False)
    run = tmp_path / "runs" / "classify" / "manifest-abmil"
    ext_manifest, ext_features = classification_cohort(tmp_path / "external", n_cases=30, seed=0)
    cfg = EvaluateConfig(run=str(run), manifest=str(ext_manifest), features=str(ext_features), name="ext")
    result = evaluate_run(cfg)
    assert (result["metrics"]["test"]["auc_macro"]["value"] > 0.85
            and result["metrics"]["test"]["auc_macro"]["n"] == 30)
    assert (run / "evaluations" / "ext" / "figures" / "roc_test.png").exists()
    assert read_metrics_meta(run / "evaluations" / "ext" / "metrics.json")["cases_seen_in_training"] == 0
    # the run's own cohort is not an external validation: said, and counted
    own = evaluate_run(EvaluateConfig(run=str(run), manifest=str(cls_data[0]), features=str(cls_data[1]),
                                      name="own"))
    table = pd.read_csv(cls_data[0])
    trained = table.loc[table["fold"] != "test", "case"].nunique()
    assert read_metrics_meta(Path(own["out"]) / "metrics.json")["cases_seen_in_training"] == trained > 0
    assert f"{trained} of the {table['case'].nunique()} cases were in the run's training" in caplog.text


def _stamp(features, encoder: str) -> None:
    import h5py

    for f in sorted(features.glob("*.h5")):
        with h5py.File(f, "a") as h5:
            h5.attrs["encoder"], h5.attrs["encoder_sha"] = encoder, encoder[-1] * 64


def test_evaluate_refuses_another_encoders_features_and_another_tasks_manifest(tmp_path):
    from mstar.tasks.evaluate import EvaluateConfig, evaluate_run

    manifest, features = classification_cohort(tmp_path / "train", n_cases=30)
    _stamp(features, "enc-a")
    train_task(_cfg(tmp_path, manifest, features, task="classify", epochs=1), progress=False)
    run = tmp_path / "runs" / "classify" / "manifest-abmil"
    ext_manifest, ext_features = classification_cohort(tmp_path / "external", n_cases=12, seed=1)
    _stamp(ext_features, "enc-b")  # the same width, another encoder
    with pytest.raises(MstarError, match="features from encoder enc-b .* trained on enc-a"):
        evaluate_run(EvaluateConfig(run=str(run), manifest=str(ext_manifest), features=str(ext_features),
                                    name="other-encoder"))
    _stamp(ext_features, "enc-a")
    surv_manifest, _ = survival_cohort(tmp_path / "surv", n_cases=12)
    with pytest.raises(MstarError, match=r"a classify run and needs a labelled \(a label column\) manifest"):
        evaluate_run(EvaluateConfig(run=str(run), manifest=str(surv_manifest), features=str(ext_features),
                                    name="survival-manifest"))
    assert not (run / "evaluations").exists() or not any((run / "evaluations").iterdir())
    result = evaluate_run(EvaluateConfig(run=str(run), manifest=str(ext_manifest), features=str(ext_features),
                                         name="same-encoder"))
    assert result["metrics"]["test"]["auc_macro"]["n"] == 12


def test_units_trained_in_different_precisions_are_listed(tmp_path, caplog):
    from types import SimpleNamespace

    from mstar.tasks import run_files
    from mstar.tasks.runner import unit_precisions

    units = [SimpleNamespace(name=n) for n in ("fold0", "fold1")]
    for unit, precision in zip(units, ("bf16-mixed", "bf16-mixed")):
        run_files.unit_dir(tmp_path, unit.name).mkdir(parents=True)
        run_files.write_json(run_files.unit_dir(tmp_path, unit.name) / "done.json", {"precision": precision})
    assert unit_precisions(tmp_path, units) == "bf16-mixed"
    run_files.write_json(run_files.unit_dir(tmp_path, "fold1") / "done.json", {"best_epoch": 3})  # older run
    assert unit_precisions(tmp_path, units) == "fold0: bf16-mixed, fold1: unrecorded"
    assert "different precisions" in caplog.text


def test_too_few_deaths_name_the_manifest_and_unit():
    from mstar.tasks.objectives import SurvivalObjective

    train = pd.DataFrame({"time": [1.0, 2.0, 3.0, 4.0, 5.0], "event": [True, False, False, False, False]})
    with pytest.raises(MstarError, match=r"^m.csv \(fold1\): the training split has 1 observed deaths; at "
                                         r"least 4 are needed"):
        SurvivalObjective(4).fit(train, "m.csv (fold1)")


def test_a_damaged_model_file_of_a_run_is_one_line_saying_what_to_do(tmp_path):
    from mstar.pretrain.stage1_model import Stage1Model
    from mstar.run.checkpoint import load_checkpoint
    from mstar.tasks.run_files import load_model

    model = tmp_path / "model.pt"
    torch.save({"info": {}, "state_dict": {"w": torch.zeros(500)}}, model)
    model.write_bytes(model.read_bytes()[:300])  # a copy cut short
    with pytest.raises(MstarError, match=r"model.pt: cannot read this model \(the file is incomplete or "
                                         r"damaged .*\); train the run again \(--overwrite\)$"):
        load_model(model)
    with pytest.raises(MstarError, match=r"nope.pt: neighbour bank not found"):
        load_checkpoint(tmp_path / "nope.pt", what="neighbour bank")
    cache = tmp_path / "cache"
    cache.mkdir()
    from types import SimpleNamespace

    text = SimpleNamespace(_cls_cache={}, text_cache_file=lambda folder: cache / "cls.pt")
    (cache / "cls.pt").write_bytes(b"")  # a damaged cache is recomputed, never a stop
    assert Stage1Model.load_text_cache(text, cache) == 0 and text._cls_cache == {}
