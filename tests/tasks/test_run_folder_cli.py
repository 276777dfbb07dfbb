"""`mstar train classify` through the run layer: typed --set values, re-runs from config.yaml, changed inputs,
TensorBoard event files."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import mstar.cli.train  # noqa: F401  (registers the commands)
from mstar.cli import app, main
from tests.tasks._bags import classification_cohort

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runfolder")
    manifest, features = classification_cohort(root / "cohort", n_cases=36, seed=2)
    return root, manifest, features


def _args(root, manifest, features, *extra):
    return ["train", "classify", "--manifest", str(manifest), "--features", str(features),
            "--out", str(root / "runs"), "--epochs", "2", "--batch-size", "8", "--set", "bootstrap=20",
            "--set", "model_args={dim: 16, attn_dim: 8}", *extra]


def test_set_values_are_typed_and_bad_ones_are_one_line_errors(data, capsys):
    root, manifest, features = data
    res = runner.invoke(app, _args(root, manifest, features, "--set", "lr=1e-4", "--name", "typed"))
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((root / "runs" / "classify" / "typed" / "config.yaml").read_text())
    assert saved["lr"] == 1e-4 and isinstance(saved["lr"], float)
    for bad, message in (("lr=abc", "error: config: 'lr' must be a number, got 'abc'"),
                         ("no_such_key=1", "error: --set: unknown setting 'no_such_key'")):
        with pytest.raises(SystemExit) as exit_:
            main(_args(root, manifest, features, "--set", bad, "--name", "bad"))
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 1 and err.startswith(message) and "\n" not in err
    assert not (root / "runs" / "classify" / "bad").exists()


def test_rerun_from_config_yaml_is_finished_and_changed_inputs_stop(data, capsys):
    root, manifest, features = data
    res = runner.invoke(app, _args(root, manifest, features, "--name", "again"))
    assert res.exit_code == 0, res.output
    run = root / "runs" / "classify" / "again"
    metrics = (run / "metrics.json").read_text()
    res = runner.invoke(app, ["train", "classify", "--config", str(run / "config.yaml")])
    assert (res.exit_code == 0
            and "already finished with these settings and inputs" in " ".join(res.output.split()))
    assert (run / "metrics.json").read_text() == metrics  # nothing was recomputed
    with pytest.raises(SystemExit):
        main(["train", "classify", "--config", str(run / "config.yaml"), "--epochs", "3"])
    err = capsys.readouterr().err
    assert "(epochs 2 -> 3)" in err and "--overwrite" in err and "--name" in err
    relabelled = root / "relabelled.csv"
    table = pd.read_csv(manifest)
    table.loc[0, "label"] = "A" if table.loc[0, "label"] != "A" else "B"
    table.to_csv(relabelled, index=False)
    with pytest.raises(SystemExit):
        main(["train", "classify", "--config", str(run / "config.yaml"), "--manifest", str(relabelled)])
    assert "input 'manifest' changed" in capsys.readouterr().err
    other = root / "cohort2"
    _, features2 = classification_cohort(other, n_cases=36, seed=3)
    with pytest.raises(SystemExit):
        main(["train", "classify", "--config", str(run / "config.yaml"), "--features", str(features2)])
    assert "input 'features' changed" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == metrics  # and the finished run is untouched


def test_logger_tensorboard_writes_event_files_readable_back(data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, manifest, features = data
    res = runner.invoke(app, _args(root, manifest, features, "--set", "logger=tensorboard", "--name", "tb"))
    assert res.exit_code == 0, res.output
    unit = root / "runs" / "classify" / "tb" / "units" / "fixed"
    events = EventAccumulator(str(unit / "tensorboard"))
    events.Reload()
    log = pd.read_csv(unit / "log.csv")
    assert ([e.value for e in events.Scalars("epoch/val_auc_macro")]
            == pytest.approx(log["val_auc_macro"].tolist()))
    assert [e.value for e in events.Scalars("epoch/train_loss")] == pytest.approx(log["train_loss"].tolist())
