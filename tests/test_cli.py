import re

import pytest
from typer.testing import CliRunner

from mstar.cli import app

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_help_lists_every_command_with_one_line():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in _commands():
        assert re.search(rf"^  {re.escape(name)}\s+\S", result.output, re.M), name


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help(name):
    result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage" in result.output


def _options() -> dict[str, dict[str, object]]:
    """``{command: {visible option name: its click parameter}}`` for every command and subcommand."""
    import typer.main

    out = {}

    def walk(group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):  # a command group (typer's own click)
                walk(cmd, f"{prefix}{name} ")
                continue
            out[f"{prefix}{name}"] = {opt: p for p in cmd.params if not getattr(p, "hidden", False)
                                      for opt in p.opts if opt.startswith("--")}

    walk(typer.main.get_command(app), "")
    return out


RUN_COMMANDS = ("train classify", "train survival", "train multimodal-survival", "train report", "pretrain",
                "self-train", "embed", "zero-shot", "few-shot", "retrieve", "generate", "evaluate")
STAGE1_COMMANDS = ("train classify", "train survival", "train report", "self-train", "embed", "zero-shot",
                   "few-shot", "retrieve")


def test_option_names_mean_one_thing_across_commands():
    options = _options()
    assert set(RUN_COMMANDS) <= set(options)
    for cmd in RUN_COMMANDS:  # every run command: the run-folder vocabulary, and a re-run from config.yaml
        assert {"--config", "--set", "--overwrite", "--name"} <= set(options[cmd]), cmd
        assert not any(p.required for p in options[cmd].values()), f"{cmd}: --config alone must be enough"
        if cmd != "evaluate":  # an evaluation lives inside the run it evaluates
            assert "Runs folder" in options[cmd]["--out"].help, cmd
    for cmd in STAGE1_COMMANDS:
        assert "--stage1" in options[cmd] and "--aggregator" not in options[cmd], cmd
    checkpoint = {cmd for cmd, opts in options.items() if "--checkpoint" in opts}
    assert checkpoint == {"extract", "self-train", "predict"}  # patch-encoder weights, nothing else
    for cmd in checkpoint:
        assert "stage-1" not in options[cmd]["--checkpoint"].help.lower()


def test_old_spellings_still_parse_with_a_deprecation_line(tmp_path):
    result = runner.invoke(app, ["train", "classify", "--manifest", str(tmp_path / "m.csv"), "--features",
                                 str(tmp_path), "--aggregator", str(tmp_path / "s1.pt")])
    assert "--aggregator is deprecated" in result.output and "use --stage1" in result.output


def test_mstar_warnings_are_one_warning_line_while_a_command_runs(capsys, monkeypatch):
    import logging
    import warnings

    import mstar.cli as cli

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # a plain process: no logging set up
    logger, before = logging.getLogger("mstar"), warnings.showwarning
    with cli.one_line_warnings(), cli.one_line_warnings():  # nested: still one handler
        logging.getLogger("mstar.tasks").warning("embedded from another reports file %s", "r.json")
        warnings.warn_explicit("classes file names none of LUAD", UserWarning, cli.__file__, 1)
    assert capsys.readouterr().err.splitlines() == ["warning: embedded from another reports file r.json",
                                                    "warning: classes file names none of LUAD"]
    assert warnings.showwarning is before  # undone: in-process callers keep their own set-up
    assert not any(getattr(h, "mstar_cli", False) for h in logger.handlers)


def test_warning_lines_leave_a_callers_own_logging_alone(capsys, monkeypatch):
    import logging

    import mstar.cli as cli

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler()])  # the caller's set-up (stderr)
    with cli.one_line_warnings():
        logging.getLogger("mstar.tasks").warning("shown once")
    assert capsys.readouterr().err.splitlines() == ["shown once"]  # by the caller's handler, not twice


@pytest.mark.parametrize("name", sorted(_options()))
def test_help_shows_every_option_name_whole_on_an_80_column_terminal(name):
    """(Rich's option tables cut long names, "--force-slide-m…", at 80 columns.)"""
    result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.output
    for option in _options()[name]:
        assert re.search(rf"(^|[\s,/]){re.escape(option)}([\s,/=]|$)", result.output, re.M), option


def test_a_skip_errors_batch_lists_each_failure_and_fails_only_when_all_did(capsys):
    import pandas as pd

    from mstar.cli.options import report_failures
    from mstar.errors import MstarError

    table = pd.DataFrame({"slide": ["a", "b", "c"], "status": ["ok", "error", "error"],
                          "error": ["", "no µm/px", "truncated"]})
    report_failures(table, "slide", "out/predictions.csv")  # tile, extract and predict print the same
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines == ["error b: no µm/px", "error c: truncated"]
    table["status"] = "error"
    with pytest.raises(MstarError, match=r"every slide failed \(3\), the first: a: ; see out/predictions"):
        report_failures(table, "slide", "out/predictions.csv")


def test_every_device_option_is_checked_the_same_way():
    from mstar.errors import MstarError
    from mstar.features.distributed import resolve_device

    assert str(resolve_device("auto")) in ("cpu", "cuda:0") and str(resolve_device("cpu")) == "cpu"
    with pytest.raises(MstarError, match=r"--device gpu: not a torch device \(auto, cpu, cuda"):
        resolve_device("gpu")  # embed, zero-shot, few-shot and retrieve used to pass it to torch
    assert str(resolve_device("meta")) == "meta"  # any torch device type passes (mps, xpu, ...)


def test_a_finished_run_is_said_one_way_by_every_command(capsys):
    from mstar.cli.options import say_finished

    say_finished({"finished_before": True, "run": "runs/x/[a]"}, "train again")
    say_finished({"finished_before": False, "run": "runs/y"})  # a new run: nothing said
    say_finished({"finished_before": True, "out": "out/p"}, key="out", stderr=True)  # stdout carries reports
    out, err = capsys.readouterr()
    assert " ".join(out.split()) == ("runs/x/[a]: already finished with these settings and inputs (pass "
                                     "--overwrite to train again)")  # brackets are not rich markup
    assert err == "out/p: already finished with these settings and inputs (pass --overwrite to redo it)\n"
