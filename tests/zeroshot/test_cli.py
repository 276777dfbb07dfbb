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


def test_cases_the_stage1_model_was_trained_on_are_refused_unless_asked(trained_model, zs_cohort, tmp_path,
                                                                        caplog):
    """Zero-shot, few-shot and retrieval on cases stage 1 saw score optimistically: refused by default."""
    import pandas as pd

    from mstar.pretrain.stage1_model import save_stage1

    manifest = pd.read_csv(zs_cohort["manifest"])
    test_cases = manifest.loc[manifest["fold"] == "test", "case"].drop_duplicates().tolist()
    train_cases = manifest.loc[manifest["fold"] == "train", "case"].drop_duplicates().tolist()
    leaky = save_stage1(tmp_path / "leaky.pt", trained_model, {"train_cases": train_cases + test_cases[:2]})
    clean = save_stage1(tmp_path / "clean.pt", trained_model, {"train_cases": train_cases})
    prompts = ["--prompts", "synthetic_cancer_type", "--js", "1"]
    commands = {"zero-shot": (prompts, "val/test cases"),
                "few-shot": ([*prompts, "--shots", "1", "--runs", "1", "--methods", "simpleshot"],
                             f"{len(test_cases)} test cases (the queries)"),
                "retrieve": (["--reports", str(zs_cohort["reports"])], f"{len(test_cases)} test cases")}
    def common(ckpt, command):
        args = _common(ckpt, zs_cohort, tmp_path)
        return [a for a in args if a not in ("--bootstrap", "100")] if command == "few-shot" else args

    for command, (extra, scored) in commands.items():
        kind = {"zero-shot": "zeroshot", "few-shot": "fewshot", "retrieve": "retrieval"}[command]
        res = runner.invoke(app, [command, *common(leaky, command), *extra, "--name", "x"])
        assert res.exit_code != 0 and isinstance(res.exception, Exception), (command, res.output)
        message = str(res.exception)
        assert "leaky.pt: the stage-1 model was trained on 2 of the " in message and scored in message
        assert "--set seen_cases=warn to score them anyway" in message, command
        assert not (tmp_path / kind / "x").exists()
        res = runner.invoke(app, [command, *common(leaky, command), *extra, "--name", "warned",
                                  "--set", "seen_cases=warn"])
        assert res.exit_code == 0, res.output
        meta = json.loads((tmp_path / kind / "warned" / "metrics.json").read_text())["_meta"]
        assert meta["stage1_seen_cases"] == 2, command
        res = runner.invoke(app, [command, *common(clean, command), *extra, "--name", "clean"])
        assert res.exit_code == 0, res.output
        meta = json.loads((tmp_path / kind / "clean" / "metrics.json").read_text())["_meta"]
        assert meta["stage1_seen_cases"] == 0, command


def test_the_seen_cases_rule_matches_slide_ids_too_and_says_when_it_cannot_judge(caplog):
    from mstar.errors import MstarError
    from mstar.zeroshot.loading import check_unseen

    slides_of = {"C1": ["C1-DX1"], "C2": ["C2-DX1", "C2-DX2"], "C3": ["C3-DX1"]}
    assert check_unseen({}, slides_of, "refuse", "m.pt", "test cases") is None  # a model object: unchecked
    assert check_unseen({"epochs": 3}, slides_of, "refuse", "m.pt", "test cases") is None
    assert "does not record the cases it was trained on; make sure it never saw these test" in caplog.text
    # stage 1 was trained on a manifest whose cases were slide ids: still caught
    meta = {"train_cases": ["C2-DX2", "X9"]}
    with pytest.raises(MstarError, match=r"trained on 1 of the 3 test cases \(e.g. C2\)"):
        check_unseen(meta, slides_of, "refuse", "m.pt", "test cases")
    assert check_unseen(meta, slides_of, "warn", "m.pt", "test cases") == 1
    assert check_unseen({"train_cases": ["X9"]}, slides_of, "refuse", "m.pt", "test cases") == 0
    caplog.clear()
    partial = {"train_cases": ["X9"], "train_cases_complete": False}  # a continued model
    assert check_unseen(partial, slides_of, "refuse", "m.pt", "test cases") == 0
    assert "all the cases (a continued model)" in caplog.text
