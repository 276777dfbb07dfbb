"""How `mstar extract` stops and resumes: Ctrl-C, a fail-fast error before some slides, another precision."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from mstar.cli import INTERRUPTED, main
from mstar.errors import MstarError, first_line
from mstar.features.extract import extract_features
from mstar.features.extract_outputs import NOT_ATTEMPTED, unwritten_as_errors
from mstar.slide.tiles_file import read_tiles, write_tiles

ENC = "timm:test_vit"
FOLDER = "timm-test_vit"


def _summary(work) -> pd.DataFrame:
    return pd.read_csv(work / "features" / FOLDER / "summary.csv", keep_default_na=False).set_index("slide")


def test_a_message_less_error_still_gives_a_reason_line(tmp_path):
    assert first_line(KeyboardInterrupt()) == "interrupted"
    assert first_line(OSError()) == "OSError"
    assert first_line(RuntimeError("disk full\nmore detail")) == "disk full"
    advice = "x" * 190 + " is the file complete and a supported format (svs, tif, ndpi, mrxs)?"
    assert first_line(MstarError(advice)) == advice  # mstar's own messages are read whole
    assert first_line(RuntimeError(advice)) == advice[:200]
    rows = [{"slide": "S-1", "status": "ok", "error": ""}, {"slide": "S-2", "status": "ok", "error": ""}]
    (tmp_path / "features" / FOLDER).mkdir(parents=True)
    (tmp_path / "features" / FOLDER / "S-1.h5").write_bytes(b"")  # on disk: stays ok
    unwritten_as_errors(rows, tmp_path, FOLDER, KeyboardInterrupt())
    assert rows[0] == {"slide": "S-1", "status": "ok", "error": ""}
    assert rows[1] == {"slide": "S-2", "status": "error", "error": "features were not written (interrupted)"}


def test_ctrl_c_during_extract_says_what_is_kept_and_exits_130(work, monkeypatch, capsys):
    import mstar.features.extract as ex

    real = ex.encoder_forward

    def interrupted_on_the_second_slide(*args, **kwargs):
        forward, calls = real(*args, **kwargs), []

        def run(x):
            calls.append(len(x))
            if len(calls) == 2:  # batch size 16 > 5 tiles: one batch per slide
                raise KeyboardInterrupt
            return forward(x)

        run.mode = forward.mode
        return run

    monkeypatch.setattr(ex, "encoder_forward", interrupted_on_the_second_slide)
    with pytest.raises(SystemExit) as stop:
        main(["extract", str(work), "--encoder", ENC, "--workers", "0", "--batch-size", "16",
              "--device", "cpu"])
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "IndexError" not in err
    assert err.strip().splitlines()[-1] == INTERRUPTED
    first, *rest = sorted(p.stem for p in (work / "tiles").glob("*.h5"))
    summary = _summary(work)
    assert summary.loc[first, "status"] == "ok" and (work / "features" / FOLDER / f"{first}.h5").exists()
    assert list(summary.loc[rest, "status"]) == ["pending", "pending"]  # never finished: not "ok"
    # the re-run resumes: only the two missing slides are extracted
    monkeypatch.setattr(ex, "encoder_forward", real)
    again = extract_features(work, ENC, workers=0, batch_size=16, device="cpu", show_progress=False)
    assert list(again["status"]) == ["ok"] * 3 and list(_summary(work)["status"]) == ["ok"] * 3


def test_a_slide_not_reached_after_a_fail_fast_stop_keeps_no_stale_error(work, tmp_path):
    tiles = sorted((work / "tiles").glob("*.h5"))
    last = tiles[-1]
    shutil.copy(last, tmp_path / "original.h5")
    coords, attrs = read_tiles(last)
    write_tiles(last, coords, np.ones(len(coords), np.float32),
                {**attrs, "slide_path": str(tmp_path / "moved" / "x.svs")})
    extract_features(work, ENC, workers=0, skip_errors=True, show_progress=False)
    assert _summary(work).loc[last.stem, "status"] == "error"  # the slide was not found
    shutil.copy(tmp_path / "original.h5", last)  # the slide is back
    # a new bad slide sorts first: the fail-fast re-run stops before reaching the restored one
    write_tiles(work / "tiles" / "GONE-1.h5", coords, np.ones(len(coords), np.float32),
                {**attrs, "slide_id": "GONE-1", "slide_path": str(tmp_path / "nowhere.svs")})
    with pytest.raises(MstarError, match="nowhere.svs.* not found.*use --skip-errors"):
        extract_features(work, ENC, workers=0, show_progress=False)
    summary = _summary(work)
    assert summary.loc["GONE-1", "status"] == "error" and "not found" in summary.loc["GONE-1", "error"]
    assert summary.loc[last.stem, "status"] == "pending"
    assert summary.loc[last.stem, "error"] == NOT_ATTEMPTED
    assert list(summary.loc[[t.stem for t in tiles[:-1]], "status"]) == ["ok", "ok"]  # features on disk
    (work / "tiles" / "GONE-1.h5").unlink()
    extract_features(work, ENC, workers=0, show_progress=False)
    assert _summary(work).loc[last.stem, "status"] == "ok"


def _precisions(work) -> set[str]:
    found = set()
    for p in (work / "features" / FOLDER).glob("*.h5"):
        with h5py.File(p, "r") as f:
            found.add(str(f.attrs["precision"]))
    return found


def test_another_explicit_precision_is_refused_and_overwrite_redoes_it(work):
    extract_features(work, ENC, workers=0, precision="bf16", device="cpu", show_progress=False)
    assert _precisions(work) == {"bf16"}
    with pytest.raises(MstarError, match=r"extracted in bf16, not the --precision fp32 asked for; pass "
                                         r"--overwrite to extract again in fp32, or --precision bf16"):
        extract_features(work, ENC, workers=0, precision="fp32", device="cpu", show_progress=False)
    # the same precision, or auto (which asks for none), resumes with the files as they are
    for precision in ("bf16", None):
        summary = extract_features(work, ENC, workers=0, precision=precision, device="cpu",
                                   show_progress=False)
        assert list(summary["status"]) == ["ok"] * 3 and _precisions(work) == {"bf16"}
    summary = extract_features(work, ENC, workers=0, precision="fp32", device="cpu", overwrite=True,
                               show_progress=False)
    assert list(summary["status"]) == ["ok"] * 3 and _precisions(work) == {"fp32"}
