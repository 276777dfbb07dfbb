"""Bad inputs stop before training with one line naming the file and the fix."""

from __future__ import annotations

import shutil

import pytest

import mstar.cli.selftrain  # noqa: F401 - registers `mstar self-train`
from mstar.cli import main
from mstar.errors import MstarError
from mstar.selftrain.config import SelfTrainConfig
from mstar.selftrain.train import self_train

from .conftest import ENCODER, FEATURES, save_random_stage1


def _cfg(work, aggregator, out, **kw) -> SelfTrainConfig:
    return SelfTrainConfig(tiles=str(work), features=str(work / "features" / FEATURES),
                           stage1=str(aggregator), encoder=ENCODER, out=str(out), **kw)


def test_aggregator_width_must_match_the_features(st_work, tmp_path):
    agg = save_random_stage1(tmp_path / "agg32.pt", in_dim=32)
    with pytest.raises(MstarError, match=r"\.h5: 64-d features, but the aggregator agg32\.pt projects 32-d .*"
                                         r"pass --features extracted with the stage-1 patch encoder"):
        self_train(_cfg(st_work, agg, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing started


def test_features_without_tiles_are_an_error(st_work, random_stage1, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(st_work, work)
    victim = min((work / "tiles").glob("*.h5"))
    victim.unlink()
    with pytest.raises(MstarError, match=rf"no tiles file .*{victim.name}; pass the --tiles folder"):
        self_train(_cfg(work, random_stage1, tmp_path / "run"), progress=False)
    shutil.rmtree(work / "tiles")
    with pytest.raises(MstarError, match="no tiles files"):
        self_train(_cfg(work, random_stage1, tmp_path / "run"), progress=False)


def test_missing_aggregator_and_unknown_val_slides(st_work, random_stage1, tmp_path):
    with pytest.raises(MstarError, match="does not exist"):
        self_train(_cfg(st_work, tmp_path / "nope.pt", tmp_path / "run"), progress=False)
    with pytest.raises(MstarError, match=r"val_slides \['X'\] have no features"):
        self_train(_cfg(st_work, random_stage1, tmp_path / "run", val_slides=["X"]), progress=False)


def test_cli_reports_one_line(st_work, tmp_path, capsys):
    agg = save_random_stage1(tmp_path / "agg32.pt", in_dim=32)
    with pytest.raises(SystemExit) as exit_info:
        main(["self-train", "--tiles", str(st_work), "--features", str(st_work / "features" / FEATURES),
              "--stage1", str(agg), "--encoder", ENCODER, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert (exit_info.value.code == 1 and err.startswith("error: ") and "\n" not in err
            and "64-d features" in err)
    with pytest.raises(SystemExit):
        main(["self-train", "--tiles", str(st_work)])
    assert "'features' is required (--features)" in capsys.readouterr().err


def test_cli_help_lists_the_options():
    from typer.testing import CliRunner

    from mstar.cli import app

    result = CliRunner().invoke(app, ["self-train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--tiles", "--features", "--stage1", "--encoder", "--checkpoint", "--out", "--config",
                   "--steps-per-epoch", "--patches-per-slide", "--grad-checkpointing"):
        assert option in result.output


def test_config_yaml_is_read_and_unknown_settings_are_named(st_work, tmp_path):
    good = tmp_path / "run.yaml"
    good.write_text(f"tiles: {st_work}\nepochs: 2\nema_weight: 0.3\naggregator: a.pt\n")
    cfg = SelfTrainConfig.load(good, {"features": "f", "epochs": 5, "encoder": "e"})
    assert (cfg.tiles, cfg.epochs, cfg.ema_weight) == (str(st_work), 5, 0.3)  # the command line wins
    assert cfg.stage1 == "a.pt"  # the old key of the stage-1 checkpoint still reads
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 2\n")
    with pytest.raises(MstarError, match=r"bad\.yaml: unknown setting 'epochz'; did you mean 'epochs'\?"):
        SelfTrainConfig.load(bad)
