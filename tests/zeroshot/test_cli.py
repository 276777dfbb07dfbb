"""The three commands end to end on a saved stage-1 checkpoint."""

import json

import pytest
from typer.testing import CliRunner

import mstar.cli.zeroshot  # noqa: F401  (registers the commands)
from mstar.cli import app, main

pytestmark = pytest.mark.slow
runner = CliRunner()


def _common(ckpt, cohort, out):
    return ["--stage1", str(ckpt), "--manifest", str(cohort["manifest"]), "--features",
            str(cohort["features"]), "--out", str(out), "--bootstrap", "100"]


def test_cli_zero_shot_few_shot_retrieve(trained_checkpoint, zs_cohort, tmp_path):
    args = _common(trained_checkpoint, zs_cohort, tmp_path)
    res = runner.invoke(app, ["zero-shot", *args, "--prompts", "synthetic_cancer_type", "--js", "1,10",
                              "--name", "zs", "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "slide" in res.output and "chance 0.333" in res.output
    doc = json.loads((tmp_path / "zeroshot" / "zs" / "metrics.json").read_text())
    assert doc["_meta"]["js"] == [1, 10] and doc["test"]["slide/balanced_accuracy"]["value"] >= 0.75

    few = [a for a in args if a not in ("--bootstrap", "100")]
    res = runner.invoke(app, ["few-shot", *few, "--prompts", "synthetic_cancer_type", "--shots", "1,4",
                              "--runs", "2", "--methods", "simpleshot,linear_probe", "--name", "fs"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "linear_probe" in res.output and (tmp_path / "fewshot" / "fs" / "runs.csv").exists()

    res = runner.invoke(app, ["retrieve", *args, "--reports", str(zs_cohort["reports"]), "--rna",
                              str(zs_cohort["rna"]), "--name", "rt"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for direction in ("slide_to_report", "report_to_slide", "slide_to_gene", "slide_to_slide"):
        assert direction in res.output

    # every run folder re-runs from its config.yaml alone, and says it is already finished
    for command, kind, name in (("zero-shot", "zeroshot", "zs"), ("few-shot", "fewshot", "fs"),
                                ("retrieve", "retrieval", "rt")):
        config = tmp_path / kind / name / "config.yaml"
        res = runner.invoke(app, [command, "--config", str(config)], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "already finished with these settings and inputs" in res.output, command


def test_cli_errors_are_one_line(zs_cohort, tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"0": {"classnames": {"BRCA": ["x"], "LUAD": ["y"]},
                                     "templates": ["CLASSNAME"]}}))
    with pytest.raises(SystemExit) as exit_:
        main(["zero-shot", *_common(tmp_path / "none.pt", zs_cohort, tmp_path), "--prompts", str(bad)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "LUAD" in err and "p.json" in err
    with pytest.raises(SystemExit):
        main(["few-shot", *_common(tmp_path / "none.pt", zs_cohort, tmp_path)[:-2], "--prompts",
              "synthetic_cancer_type", "--shots", "1,x"])
    assert "'shots' must be a list of integers" in capsys.readouterr().err
