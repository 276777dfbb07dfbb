"""mstar compare: paired bootstrap of metric differences between two runs' predictions."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored
from typer.testing import CliRunner

from mstar.cli import app
from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci
from mstar.eval.compare import compare_runs
from mstar.eval.survival import concordance_difference_ci


def _survival_runs(tmp_path, n=200):
    rng = np.random.default_rng(0)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = rng.random(n) < 0.7
    noise = rng.normal(size=n)
    cases = [f"C{i:03d}" for i in range(n)]
    runs = {}
    for name, scale in (("fusion", 0.6), ("snn", 1.3)):
        run = tmp_path / name
        run.mkdir()
        pd.DataFrame({"unit": "fold0", "split": "test", "case": cases, "time": time, "event": event,
                      "risk": risk + scale * noise}).to_csv(run / "predictions.csv", index=False)
        runs[name] = run
    return runs, (time, event, risk, noise)


def test_survival_difference_matches_sksurv_and_the_paired_helper(tmp_path):
    runs, (time, event, risk, noise) = _survival_runs(tmp_path)
    out = compare_runs(runs["fusion"], runs["snn"], n_resamples=300)
    m = out["metrics"]["c_index"]
    c_a = concordance_index_censored(event, time, risk + 0.6 * noise)[0]
    c_b = concordance_index_censored(event, time, risk + 1.3 * noise)[0]
    assert m["a"] == pytest.approx(c_a) and m["b"] == pytest.approx(c_b)
    assert m["difference"] == concordance_difference_ci(event, time, risk + 0.6 * noise, risk + 1.3 * noise,
                                                        n_resamples=300)
    assert m["difference"]["ci_low"] > 0 and out["n"] == 200 and out["task"] == "survival"


def test_classification_difference_equals_generic_bootstrap_of_sklearn_auc(tmp_path):
    rng = np.random.default_rng(1)
    n = 120
    y = rng.integers(0, 2, n)
    cases = [f"C{i:03d}" for i in range(n)]  # sorted order = row order, so both bootstraps draw the same rows
    probs = {"good": 1 / (1 + np.exp(-(2 * y - 1) * 1.5 - rng.normal(size=n))), "weak": rng.random(n)}
    for name, p in probs.items():
        (tmp_path / name).mkdir()
        pd.DataFrame({"unit": "run0", "split": "test", "case": cases, "label": y, "y": y, "prob_neg": 1 - p,
                      "prob_pos": p}).to_csv(tmp_path / name / "predictions.csv", index=False)
    out = compare_runs(tmp_path / "good", tmp_path / "weak", n_resamples=200, seed=3)
    auc = out["metrics"]["auc_macro"]
    assert auc["a"] == pytest.approx(roc_auc_score(y, probs["good"]))
    generic = bootstrap_ci(lambda yy, a, b: roc_auc_score(yy, a) - roc_auc_score(yy, b), y, probs["good"],
                           probs["weak"], n_resamples=200, seed=3)
    assert auc["difference"] == pytest.approx(generic, abs=1e-9)
    assert auc["difference"]["ci_low"] > 0


def test_cv_folds_are_scored_one_by_one_and_averaged(tmp_path):
    """Fold models have different risk scales: pooling them would be wrong; the unit mean is what counts."""
    rng = np.random.default_rng(5)
    n = 240
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = rng.random(n) < 0.7
    fold = np.arange(n) % 2
    models = {"a": risk + 0.5 * rng.normal(size=n), "b": risk + 1.5 * rng.normal(size=n)}
    models["b"] = models["b"] + 100.0 * fold  # fold 1's model outputs a shifted scale
    for name, r in models.items():
        (tmp_path / name).mkdir()
        pd.DataFrame({"unit": [f"fold{k}" for k in fold], "split": "test",
                      "case": [f"C{i:03d}" for i in range(n)], "time": time, "event": event,
                      "risk": r}).to_csv(tmp_path / name / "predictions.csv", index=False)
    out = compare_runs(tmp_path / "a", tmp_path / "b", n_resamples=200)
    per_fold = [concordance_index_censored(event[fold == k], time[fold == k], models["a"][fold == k])[0]
                - concordance_index_censored(event[fold == k], time[fold == k], models["b"][fold == k])[0]
                for k in (0, 1)]
    d = out["metrics"]["c_index"]["difference"]
    assert out["units"] == ["fold0", "fold1"] and out["n"] == n
    assert d["value"] == pytest.approx(np.mean(per_fold)) and d["per_unit"] == pytest.approx(per_fold)
    assert d["ci_low"] <= d["value"] <= d["ci_high"]
    (tmp_path / "c").mkdir()
    pd.read_csv(tmp_path / "b" / "predictions.csv").assign(unit="run0").to_csv(
        tmp_path / "c" / "predictions.csv")
    with pytest.raises(MstarError, match="different units"):
        compare_runs(tmp_path / "a", tmp_path / "c")


def test_repeated_runs_on_the_same_cases_count_each_case_once(tmp_path):
    """(--runs 2 on 17 test cases said "34 common cases".)"""
    rng = np.random.default_rng(2)
    n = 40
    risk = rng.normal(size=n)
    time, event = rng.exponential(np.exp(-risk)), rng.random(n) < 0.7
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        rows = [pd.DataFrame({"unit": unit, "split": "test", "case": [f"C{i:02d}" for i in range(n)],
                              "time": time, "event": event, "risk": risk + rng.normal(size=n)})
                for unit in ("run0", "run1")]
        pd.concat(rows).to_csv(tmp_path / name / "predictions.csv", index=False)
    b = pd.read_csv(tmp_path / "b" / "predictions.csv")
    b[b["case"] != "C00"].to_csv(tmp_path / "b" / "predictions.csv", index=False)  # one case only in A
    out = compare_runs(tmp_path / "a", tmp_path / "b", n_resamples=50)
    assert (out["n"], out["only_a"], out["only_b"]) == (n - 1, 1, 0)
    assert out["metrics"]["c_index"]["difference"]["n"] == n - 1


def test_errors_name_the_problem(tmp_path):
    runs, _ = _survival_runs(tmp_path, n=30)
    with pytest.raises(MstarError, match="no predictions for split 'val'"):
        compare_runs(runs["fusion"], runs["snn"], split="val")
    other = tmp_path / "other"
    other.mkdir()
    pd.DataFrame({"split": "test", "case": ["X1", "X2"], "time": [1.0, 2.0], "event": [True, False],
                  "risk": [0.1, 0.2]}).to_csv(other / "predictions.csv", index=False)
    with pytest.raises(MstarError, match="share no case"):
        compare_runs(runs["fusion"], other)
    clf = tmp_path / "clf"
    clf.mkdir()
    pd.DataFrame({"split": "test", "case": ["C000"], "y": [0], "prob_a": [0.4], "prob_b": [0.6]}).to_csv(
        clf / "predictions.csv", index=False)
    with pytest.raises(MstarError, match="is a survival run and .*clf a classification run; compare two runs "
                                         "of the same task"):
        compare_runs(runs["fusion"], clf)
    pretrain = tmp_path / "pretrain"
    pretrain.mkdir()
    (pretrain / "run.json").write_text(json.dumps({"kind": "pretrain", "status": "finished"}))
    with pytest.raises(MstarError, match="pretrain: a pretrain run; `mstar compare` compares classify, "
                                         "survival and multimodal-survival runs and their evaluations"):
        compare_runs(runs["fusion"], pretrain)
    for name, run in runs.items():  # two external validations (`mstar evaluate`) still compare
        (run / "run.json").write_text(json.dumps({"kind": "evaluation", "status": "finished"}))
    assert compare_runs(runs["fusion"], runs["snn"], n_resamples=20)["n"] == 30
    with pytest.raises(MstarError, match="not found"):
        compare_runs(tmp_path / "missing", runs["snn"])
    stub = tmp_path / "stub"  # started, never finished: not "run the evaluation step first"
    stub.mkdir()
    (stub / "run.json").write_text(json.dumps({"kind": "survival", "status": "running"}))
    with pytest.raises(MstarError, match=r"stub: this run has not finished \(run.json says running"):
        compare_runs(runs["fusion"], stub)


def test_cli_prints_a_verdict_and_writes_json(tmp_path):
    runs, _ = _survival_runs(tmp_path)
    out_json = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", "--run", str(runs["fusion"]), "--run", str(runs["snn"]),
                                      "--bootstrap", "200", "--json", str(out_json), "--plot",
                                      str(tmp_path / "cmp.png")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "c_index" in result.output and "A better" in result.output
    saved = json.loads(out_json.read_text())
    assert saved["n"] == 200 and saved["metrics"]["c_index"]["difference"]["ci_low"] > 0
    from PIL import Image

    pixels = np.asarray(Image.open(tmp_path / "cmp.png").convert("RGB")).reshape(-1, 3).astype(int)
    green = (np.abs(pixels - [0x2C, 0xA0, 0x2C]).sum(1) < 30).sum()  # the "A better" colour
    red = (np.abs(pixels - [0xD6, 0x27, 0x28]).sum(1) < 30).sum()
    assert green > 50 and red == 0  # A's better C-index is drawn in green, nothing claims B better
