import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mstar.errors import MstarError
from mstar.tasks.report_config import ReportConfig
from mstar.tasks.report_task import generate_for_run, read_reports, train_report
from tests.tasks._bags import report_cohort, write_bag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """Bags whose patches carry the cancer type; real synthetic report texts; a tiny model."""
    root = tmp_path_factory.mktemp("report")
    rows, reports = report_cohort(root, 240)
    reports[rows[0]["slide"]] = "   "  # an empty report is skipped and counted
    (root / "reports.json").write_text(json.dumps(reports))
    cfg = ReportConfig(manifest=str(root / "manifest.csv"), features=str(root / "features"),
                       reports=str(root / "reports.json"), out=str(root / "runs"), epochs=20, lr=4e-3,
                       gamma=0.95, grad_clip_value=None, batch_size=8, min_freq=3, val_every=10, beam_size=3,
                       val_beam_size=1, bootstrap=100, meteor=False, length_penalty=1.0,
                       model_args={"d_model": 32, "d_ff": 64, "n_heads": 4, "d_vf": 64, "cmm_size": 64,
                                   "cmm_dim": 32, "topk": 16, "prototype_num": 16, "region_size": 16,
                                   "drop_prob_lm": 0.1, "num_layers": 2, "encoder_layers": 2, "max_len": 64,
                                   "dropout": 0.0})
    return train_report(cfg), root


def test_reports_state_the_type_and_beat_the_template_baseline(report_run):
    result, _ = report_run
    test, base = result["test"], result["test_baseline"]
    assert test["cancer_type_accuracy"] > 0.8 > base["cancer_type_accuracy"]
    assert test["bleu_4"] > base["bleu_4"]
    metrics = json.loads((Path(result["run"]) / "metrics.json").read_text())
    for part in ("test", "test_baseline"):  # bootstrapped over the test reports, like BLEU
        rate = metrics[part]["cancer_type_accuracy"]
        assert rate["value"] == pytest.approx(result[part]["cancer_type_accuracy"]) and rate["n"] == test["n"]
        assert rate["ci_low"] <= rate["value"] <= rate["ci_high"]
    assert metrics["test_baseline"]["cancer_type_accuracy"]["ci_low"] < base["cancer_type_accuracy"]
    skipped = result["skipped"]
    assert sum(s["empty_report"] for s in skipped.values()) == 1
    assert sum(s["missing_report"] for s in skipped.values()) > 0


def test_generate_prints_a_report_and_rejects_unknown_slides(report_run):
    result, root = report_run
    sid = pd.read_csv(root / "manifest.csv")["slide"][5]
    text = generate_for_run(result["run"], sid)
    assert len(text.split()) > 5
    # generation re-ranks like the evaluation did: the run's own reports come back for its test slides
    pred = pd.read_csv(Path(result["run"]) / "predictions.csv", keep_default_na=False)
    test = pred[pred.split == "test"].head(3)
    assert [generate_for_run(result["run"], s) for s in test.slide] == test.generated.tolist()
    assert (pred.generated != pred.generator).any()  # the consensus replaced some generated reports
    assert "test_generator" in result and "bleu_4" in result["test_generator"]
    with pytest.raises(MstarError, match="unknown slide id 'NOPE'"):
        generate_for_run(result["run"], "NOPE")
    write_bag(root / "wide" / f"{sid}.h5", np.zeros((4, 7), dtype=np.float32))  # another encoder's width
    with pytest.raises(MstarError, match=rf"{sid}.h5: 7-d patch features, but this run's model reads"):
        generate_for_run(result["run"], sid, features=root / "wide")


def test_generate_refuses_another_encoders_features_of_the_same_width(report_run, tmp_path):
    import shutil

    import torch

    result, root = report_run
    run = tmp_path / "run"
    shutil.copytree(result["run"], run)
    blob = torch.load(run / "model.pt", weights_only=False)
    assert blob["info"]["features"] == {}  # the test bags record no encoder: width checks only
    blob["info"]["features"] = {"encoder": "uni", "encoder_sha": "a" * 64}
    torch.save(blob, run / "model.pt")
    sid = pd.read_csv(root / "manifest.csv")["slide"][5]
    width = blob["info"]["config"]["in_dim"]
    write_bag(tmp_path / "other" / f"{sid}.h5", np.zeros((4, width), np.float32),
              {"encoder": "resnet50-trunc", "encoder_sha": "b" * 64})
    with pytest.raises(MstarError, match="features from encoder resnet50-trunc .* but the run was trained on "
                                         "uni .* pass --features made with the encoder the report model"):
        generate_for_run(run, sid, features=tmp_path / "other")


def test_predictions_show_unknown_tokens_as_decoded_and_score_the_cleaned_text(report_run, tmp_path):
    """A vocabulary of specials and number pieces only: the generator writes ``<unk>``; predictions.csv shows
    it (the cleaning used for scoring would make it a plain "unk"), and the score is of the cleaned text."""
    from mstar.eval.text_metrics import report_generation_metrics
    from mstar.models.report.vocab import clean_report

    fitted, root = report_run
    cfg = ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
        "out": str(tmp_path), "epochs": 1, "min_freq": 10**6, "consensus_k": 0, "beam_size": 1,
        "bootstrap": 0, "val_every": 1})
    result = train_report(cfg)
    pred = pd.read_csv(Path(result["run"]) / "predictions.csv", keep_default_na=False)
    test = pred[pred.split == "test"]
    assert test.generated.str.contains("<unk>").mean() > 0.5
    assert (test.generated == test.generator).all()
    cleaned = {s: clean_report(t) for s, t in zip(test.slide, test.generated)}
    assert "<unk>" not in " ".join(cleaned.values())
    expected = report_generation_metrics(cleaned, dict(zip(test.slide, test.reference)), meteor=False)
    assert result["test"]["bleu_4"] == pytest.approx(expected.scores["bleu_4"], abs=1e-12)


def test_an_interrupted_report_run_resumes_from_its_last_epoch(report_run, tmp_path, monkeypatch, caplog):
    from mstar.tasks import report_train

    fitted, _ = report_run
    cfg = ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
        "out": str(tmp_path), "epochs": 3, "beam_size": 1, "bootstrap": 0, "val_every": 1,
        "checkpoint_every_s": 0})
    original = report_train.ReportModule.on_train_epoch_end
    epochs_run = []

    def interrupted_in_epoch_3(self):
        epochs_run.append(self.current_epoch + 1)
        if self.current_epoch + 1 == 3:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(report_train.ReportModule, "on_train_epoch_end", interrupted_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_report(cfg)
    run = next((tmp_path / "report").iterdir())
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["mstar_report"]["world_size"] == 1
    ckpt["mstar_report"]["world_size"] = 2  # as if the first part ran on two devices
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    epochs_run.clear()
    monkeypatch.setattr(report_train.ReportModule, "on_train_epoch_end",
                        lambda self: (epochs_run.append(self.current_epoch + 1), original(self)))
    with caplog.at_level("WARNING", logger="mstar.tasks.report_train"):
        result = train_report(cfg)
    assert "trained on 2 device(s) on 1: each step's batch changes from 16 to 8 slides" in caplog.text
    assert epochs_run == [3]  # epochs 1 and 2 were not trained again
    assert pd.read_csv(run / "log.csv")["epoch"].tolist() == [1, 2, 3]
    assert result["best_epoch"] in (1, 2, 3) and not (run / "checkpoints").exists()  # no empty folder
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_reports_keyed_by_case_serve_the_cases_slides_and_unmatched_ids_are_one_line(report_run, tmp_path):
    fitted, root = report_run
    manifest = pd.read_csv(root / "manifest.csv")
    by_slide = json.loads((root / "reports.json").read_text())
    case = dict(zip(manifest.slide, manifest.case))
    (tmp_path / "by_case.json").write_text(json.dumps({case[s]: t for s, t in by_slide.items()}))
    settings = {"out": str(tmp_path / "runs"), "epochs": 1, "beam_size": 1, "bootstrap": 0, "consensus_k": 0}
    slide_run = train_report(ReportConfig.load(Path(fitted["run"]) / "config.yaml",
                                               {**settings, "name": "s"}))
    case_run = train_report(ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
        **settings, "name": "c", "reports": str(tmp_path / "by_case.json")}))
    assert case_run["skipped"] == slide_run["skipped"]
    assert case_run["test"]["bleu_4"] == pytest.approx(slide_run["test"]["bleu_4"])
    (tmp_path / "other.json").write_text(json.dumps({"X-1": "a report.", "X-2": "another."}))
    with pytest.raises(MstarError, match=r"other.json: no report for any of the \d+ slides \(its ids start "
                                         r"X-1, X-2; the manifest's slides SYN"):
        train_report(ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
            **settings, "name": "o", "reports": str(tmp_path / "other.json")}))
    (tmp_path / "none.json").write_text("{}")
    with pytest.raises(MstarError, match=r"none.json: the reports file holds no reports"):
        train_report(ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
            **settings, "name": "o", "reports": str(tmp_path / "none.json")}))
    (tmp_path / "blank.json").write_text(json.dumps({s: " " for s in by_slide}))
    with pytest.raises(MstarError, match=r"blank.json: no training slide has a non-empty report \(\d+ empty"):
        train_report(ReportConfig.load(Path(fitted["run"]) / "config.yaml", {
            **settings, "name": "o", "reports": str(tmp_path / "blank.json")}))
    assert not (tmp_path / "runs" / "report" / "o").exists()


def test_one_report_per_case_serves_every_slide_of_the_case():
    from mstar.tasks.report_task import slide_reports

    case_of = {"C1-DX1": "C1", "C1-DX2": "C1", "C2-DX1": "C2", "C3-DX1": "C3"}
    reports = {"C1": "case report.", "C2-DX1": "slide report.", "C2": "case report of c2."}
    assert slide_reports("r.json", reports, list(case_of), case_of) == {
        "C1-DX1": "case report.", "C1-DX2": "case report.", "C2-DX1": "slide report."}  # the slide's own wins


def test_histgen_annotation_format_is_read(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"train": [{"id": "a", "report": "x"}], "test": [{"id": "b", "report": "y"}]}))
    assert read_reports(path) == {"a": "x", "b": "y"}


def test_cli_trains_one_epoch_and_generates(report_run):
    from typer.testing import CliRunner

    from mstar.cli import app

    fitted, root = report_run
    args = ["train", "report",
            "--config", str(Path(fitted["run"]) / "config.yaml"),  # the tiny model's settings
            "--manifest", str(root / "manifest.csv"), "--features", str(root / "features"),
            "--reports", str(root / "reports.json"), "--out", str(root / "cli"), "--epochs", "1",
            "--set", "beam_size=1", "--set", "bootstrap=10"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "test_baseline" in result.output and "BLEU-4" in result.output
    assert re.search(r"cancer\s+type\s+stated\s+correctly\s+\d\.\d\d\s+\(majority\s+class\s+0\.\d\d\)",
                     result.output)  # the chance level beside the rate (the console may wrap the line)
    assert "re-ranked by the consensus of 5 training reports (pooled patch features)" in result.output
    run = root / "cli" / "report" / "manifest-histgen"
    test = pd.read_csv(run / "predictions.csv", keep_default_na=False).query("split == 'test'")
    replaced = int((test["generated"] != test["generator"]).sum())
    assert f"replaced the generated one for {replaced} of {len(test)} test slides" in result.output
    assert "test_generator" in result.output  # the generator's own figures beside the re-ranked ones
    assert (run / "metrics.json").exists()
    sid = pd.read_csv(root / "manifest.csv")["slide"][5]
    result = CliRunner().invoke(app, ["generate", "--run", str(run), "--slide", sid, "--out",
                                      str(root / "gen")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(root / "gen" / "generate" / "manifest-histgen" / "generated.csv",
                        keep_default_na=False)
    assert table["slide"].tolist() == [sid] and table["report"][0] == generate_for_run(run, sid)
    assert result.output.startswith(table["report"][0]) and len(table["report"][0].split()) > 3
