import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mstar.errors import MstarError
from mstar.slide.batch import tile_many
from mstar.slide.tiles_file import read_tiles
from mstar.slide.tiling import TileParams


@pytest.fixture()
def two_slides(tiny_cohort, tmp_path):
    src = sorted((tiny_cohort / "slides").glob("*.svs"))[:2]
    folder = tmp_path / "slides"
    folder.mkdir()
    for p in src:
        (folder / p.name).symlink_to(p)
    return folder


def test_rerun_skips_finished_slides_and_overwrite_redoes_them(two_slides, tmp_path):
    out = tmp_path / "out"
    tile_many([two_slides], out, show_progress=False)
    files = sorted((out / "tiles").glob("*.h5"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = tile_many([two_slides], out, show_progress=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert list(again["status"]) == ["ok", "ok"]
    tile_many([two_slides], out, overwrite=True, show_progress=False)
    assert [f.stat().st_mtime_ns for f in files] != stamps


def test_bad_slide_stops_the_batch_or_is_skipped_and_reported(two_slides, tmp_path):
    (two_slides / "AAA-broken.svs").write_bytes(b"not a slide at all")
    out = tmp_path / "out"
    with pytest.raises(MstarError, match="--skip-errors"):
        tile_many([two_slides], out, show_progress=False)
    assert not (out / "tiles" / "AAA-broken.h5").exists()
    summary = tile_many([two_slides], out, skip_errors=True, show_progress=False)
    row = summary.set_index("slide").loc["AAA-broken"]
    assert row["status"] == "error" and "cannot read" in row["error"]
    assert (summary["status"] == "ok").sum() == 2
    on_disk = pd.read_csv(out / "tiles" / "summary.csv")
    assert set(on_disk["slide"]) == set(summary["slide"])


def test_slides_a_stopped_run_never_reached_keep_no_stale_error(two_slides, tmp_path):
    out = tmp_path / "out"
    good = sorted(two_slides.glob("*.svs"))
    (two_slides / "ZZZ-broken.svs").write_bytes(b"not a slide")  # fails in the first run (skipped)
    tile_many([two_slides], out, skip_errors=True, show_progress=False)
    (two_slides / "ZZZ-broken.svs").unlink()
    (two_slides / "ZZZ-broken.svs").symlink_to(good[0].resolve())  # fixed since
    (two_slides / "AAA-broken.svs").write_bytes(b"not a slide")  # a new bad slide, reached first
    with pytest.raises(MstarError, match="AAA-broken"):
        tile_many([two_slides], out, show_progress=False)
    summary = pd.read_csv(out / "tiles" / "summary.csv", keep_default_na=False).set_index("slide")
    assert summary.loc["ZZZ-broken", "status"] == "pending"  # was the first run's "cannot read" error
    assert summary.loc["ZZZ-broken", "error"].startswith("not attempted")
    assert (summary.loc[[p.stem for p in good], "status"] == "ok").all()  # finished before: kept


def test_zero_tissue_slide_gives_an_empty_tiles_file(tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((2000, 2000, 3), 244, np.uint8)).save(blank)
    summary = tile_many([blank], tmp_path / "out", TileParams(slide_mpp=0.5), show_progress=False)
    assert summary.loc[0, "status"] == "no tissue" and summary.loc[0, "n_tiles"] == 0
    coords, attrs = read_tiles(tmp_path / "out" / "tiles" / "blank.h5")
    assert coords.shape == (0, 2) and attrs["status"] == "no tissue"


def test_stale_partial_files_from_a_killed_run_are_removed(two_slides, tmp_path):
    out = tmp_path / "out"
    (out / "tiles").mkdir(parents=True)
    stale = out / "tiles" / ".SYN-0001-DX1.part-abc.h5"
    stale.write_bytes(b"truncated")
    tile_many([two_slides], out, show_progress=False)
    assert not stale.exists()


def test_parallel_workers_give_the_same_tiles(two_slides, tmp_path):
    tile_many([two_slides], tmp_path / "a", show_progress=False)
    tile_many([two_slides], tmp_path / "b", workers=2, show_progress=False)
    for f in (tmp_path / "a" / "tiles").glob("*.h5"):
        assert np.array_equal(read_tiles(f)[0], read_tiles(tmp_path / "b" / "tiles" / f.name)[0])


def test_cli_reports_a_missing_mpp_in_one_line_and_exits_nonzero(tmp_path):
    img = tmp_path / "noscale.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(img)
    proc = subprocess.run([sys.executable, "-m", "mstar.cli", "tile", str(img), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 1
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "--slide-mpp" in err_lines[0]
    assert not (tmp_path / "o" / "tiles" / "noscale.h5").exists()


def test_a_reader_failure_inside_a_slide_says_the_file_may_be_damaged(two_slides, tmp_path, monkeypatch):
    from mstar.slide import batch

    def broken(path, out_dir, params):
        raise OSError("Invalid JPEG file structure: missing SOS marker")

    monkeypatch.setattr(batch, "tile_slide", broken)
    summary = tile_many([two_slides], tmp_path / "out", skip_errors=True, show_progress=False)
    assert summary["error"].tolist() == [
        "reading the slide failed (Invalid JPEG file structure: missing SOS marker); the file may be "
        "truncated or damaged: copy it again, or check it opens in QuPath"] * 2

    decoder_error = type("Jpeg8Error", (RuntimeError,), {"__module__": "imagecodecs"})

    def truncated(path, out_dir, params):  # what tiffslide raises for a truncated .svs
        raise decoder_error("Empty input file")

    monkeypatch.setattr(batch, "tile_slide", truncated)
    summary = tile_many([two_slides], tmp_path / "out1", skip_errors=True, show_progress=False)
    assert summary["error"].tolist() == [
        "reading the slide failed (Empty input file); the file may be truncated or damaged: copy it again, "
        "or check it opens in QuPath"] * 2

    def bug(path, out_dir, params):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(batch, "tile_slide", bug)  # not a reading failure: said as what it is
    summary = tile_many([two_slides], tmp_path / "out2", skip_errors=True, show_progress=False)
    assert summary["error"].tolist() == ["TypeError: unsupported operand"] * 2


def test_a_rerun_with_slide_mpp_reuses_slides_whose_metadata_won(two_slides, tmp_path):
    out = tmp_path / "out"
    tile_many([two_slides], out, show_progress=False)
    files = sorted((out / "tiles").glob("*.h5"))
    stamps = [f.stat().st_mtime_ns for f in files]
    # the run stopped at an image without µm/px; the user adds --slide-mpp: the slides with their own are kept
    again = tile_many([two_slides], out, TileParams(slide_mpp=0.5), show_progress=False)
    assert list(again["status"]) == ["ok", "ok"] and [f.stat().st_mtime_ns for f in files] == stamps
    forced = TileParams(slide_mpp=0.5, force_slide_mpp=True)  # overriding metadata changes the tiles
    with pytest.raises(MstarError, match=r"other settings \(force_slide_mpp \(unset\) -> True\)"):
        tile_many([two_slides], out, forced, show_progress=False)
    redone = tile_many([two_slides], out, forced, overwrite=True, show_progress=False)
    attrs = read_tiles(files[0])[1]
    assert (attrs["mpp_source"], attrs["mpp_level0"]) == ("override", 0.5)
    assert (redone["status"] == "ok").all()


def test_tiles_finer_than_the_scan_are_a_warning(two_slides, tmp_path, caplog):
    """(Upsampling was flagged only by `mstar extract`, about the encoder.)"""
    first = tile_many([two_slides], tmp_path / "a", show_progress=False)
    mpps = first["mpp"].astype(float).tolist()
    assert not any("upsampled" in r.getMessage() for r in caplog.records)
    fine = min(mpps) / 2.5
    tile_many([two_slides], tmp_path / "b", TileParams(target_mpp=fine, tile_px=64), show_progress=False)
    said = [r.getMessage() for r in caplog.records if "upsampled" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"2 slide(s) are scanned coarser than --target-mpp {fine:g}")
