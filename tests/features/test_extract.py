import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mstar.cli import app
from mstar.errors import MstarError
from mstar.features.encoders import create_encoder
from mstar.features.extract import extract_features, load_slide_tiles
from mstar.features.io import load_features
from mstar.features.reference import naive_features
from mstar.slide.tiles_file import read_tiles, write_tiles

ENC = "timm:test_vit"
runner = CliRunner()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    return torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()


def _outputs(work: Path) -> dict[str, bytes]:
    files = sorted([*(work / "features").rglob("*.h5"), *(work / "pt_files").rglob("*.pt")])
    return {str(p.relative_to(work)): p.read_bytes() for p in files}


def test_extract_writes_both_layouts_and_matches_the_naive_loop(work):
    summary = extract_features(work, ENC, batch_size=4, workers=2, save_pt=True, show_progress=False)
    tiles = sorted((work / "tiles").glob("*.h5"))
    assert list(summary["status"]) == ["ok"] * len(tiles) and (summary["dim"] == 64).all()
    enc = create_encoder(ENC)
    for tf in tiles:
        coords, tattrs = read_tiles(tf)
        h5 = work / "features" / "timm-test_vit" / tf.name
        feats, c, attrs = load_features(h5)
        assert feats.shape == (len(coords), 64) and feats.dtype == np.float32
        np.testing.assert_array_equal(c, coords)
        assert attrs["encoder"] == ENC and attrs["dim"] == 64 and attrs["encoder_sha"] == enc.encoder_sha
        assert attrs["schema"] == "mstar.features/1" and attrs["precision"] == "fp32"
        for key in ("mpp_level0", "target_mpp", "tile_px", "read_level", "read_px", "tile_px_level0",
                    "slide_id"):
            assert attrs[key] == tattrs[key], key
        pt = torch.load(work / "pt_files" / "timm-test_vit" / f"{tf.stem}.pt", weights_only=True)
        assert pt.dtype == torch.float32 and np.array_equal(pt.numpy(), feats)
        t = load_slide_tiles(tf)
        naive = naive_features(t.slide_path, t.coords, t.read_level, t.read_px, enc.model, enc.preprocess)
        assert _cosine(feats, naive).min() >= 0.999
    csv = pd.read_csv(work / "features" / "timm-test_vit" / "summary.csv")
    assert sorted(csv["slide"]) == sorted(p.stem for p in tiles) and (csv["n_tiles"] == 5).all()


def test_resume_skips_finished_slides_and_mirrors_pt_later(work, monkeypatch):
    extract_features(work, ENC, batch_size=8, workers=0, show_progress=False)
    before = _outputs(work)
    import mstar.features.extract as ex

    def boom(*a, **k):
        raise AssertionError("nothing should be re-extracted")

    monkeypatch.setattr(ex, "_extract_slides", boom)
    summary = extract_features(work, ENC, workers=0, save_pt=True, show_progress=False)
    assert (summary["status"] == "ok").all()
    after = _outputs(work)
    assert {k: v for k, v in after.items() if k.endswith(".h5")} == before
    assert len([k for k in after if k.endswith(".pt")]) == len(before)


def test_other_weights_under_the_same_name_are_refused(work, tmp_path):
    import timm

    extract_features(work, ENC, workers=0, show_progress=False)
    torch.manual_seed(5)
    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), tmp_path / "other.pth")
    with pytest.raises(MstarError, match="extracted with other weights .* pass --overwrite"):
        extract_features(work, ENC, checkpoint=tmp_path / "other.pth", workers=0, show_progress=False)
    summary = extract_features(work, ENC, checkpoint=tmp_path / "other.pth", workers=0, overwrite=True,
                               show_progress=False)
    assert (summary["status"] == "ok").all()


def test_empty_tiles_file_gives_empty_features(work):
    src = sorted((work / "tiles").glob("*.h5"))[0]
    coords, attrs = read_tiles(src)
    write_tiles(work / "tiles" / "EMPTY-1.h5", coords[:0], np.zeros(0, np.float32),
                {**attrs, "slide_id": "EMPTY-1"})
    summary = extract_features(work, ENC, workers=0, save_pt=True, show_progress=False).set_index("slide")
    assert summary.loc["EMPTY-1", "status"] == "empty" and summary.loc["EMPTY-1", "n_tiles"] == 0
    feats, coords, attrs = load_features(work / "features" / "timm-test_vit" / "EMPTY-1.h5")
    assert feats.shape == (0, 64) and coords.shape == (0, 2) and attrs["dim"] == 64
    pt = torch.load(work / "pt_files" / "timm-test_vit" / "EMPTY-1.pt", weights_only=True)
    assert tuple(pt.shape) == (0, 64)


def test_skip_errors_records_bad_slides_in_the_summary(work):
    tiles = sorted((work / "tiles").glob("*.h5"))
    coords, attrs = read_tiles(tiles[0])
    write_tiles(work / "tiles" / "GONE-1.h5", coords, np.ones(len(coords), np.float32),
                {**attrs, "slide_id": "GONE-1", "slide_path": str(work / "nowhere.svs")})
    bad_copy = work / "corrupt.svs"
    bad_copy.write_bytes(b"not a slide")
    write_tiles(work / "tiles" / "CORRUPT-1.h5", coords, np.ones(len(coords), np.float32),
                {**attrs, "slide_id": "CORRUPT-1", "slide_path": str(bad_copy)})
    with pytest.raises(MstarError, match="use --skip-errors"):
        extract_features(work, ENC, workers=0, show_progress=False)
    summary = extract_features(work, ENC, workers=2, skip_errors=True, show_progress=False).set_index("slide")
    assert summary.loc["GONE-1", "status"] == "error" and "not found" in summary.loc["GONE-1", "error"]
    assert summary.loc["CORRUPT-1", "status"] == "error"
    assert "cannot read" in summary.loc["CORRUPT-1", "error"]
    assert (summary.drop(["GONE-1", "CORRUPT-1"])["status"] == "ok").all()
    csv = pd.read_csv(work / "features" / "timm-test_vit" / "summary.csv", keep_default_na=False)
    csv = csv.set_index("slide")
    assert csv.loc["CORRUPT-1", "status"] == "error" and len(csv) == len(tiles) + 2
    assert not (work / "features" / "timm-test_vit" / "CORRUPT-1.h5").exists()


def test_moved_slides_are_found_with_slides_dir(work, tmp_path):
    tf = sorted((work / "tiles").glob("*.h5"))[0]
    t = load_slide_tiles(tf)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(t.slide_path, moved / Path(t.slide_path).name)
    coords, attrs = read_tiles(tf)
    moved_attrs = {**attrs, "slide_path": str(tmp_path / "old" / "x.svs")}
    write_tiles(tf, coords, np.ones(len(coords), np.float32), moved_attrs)
    with pytest.raises(MstarError, match="pass --slides FOLDER"):
        load_slide_tiles(tf)
    assert load_slide_tiles(tf, moved).slide_path == str(moved / Path(t.slide_path).name)


def test_cli_extract_and_encoders(work):
    args = ["extract", str(work), "--encoder", ENC, "--workers", "0", "--batch-size", "16", "--device", "cpu",
            "--save-pt"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "extracted 3 slides with timm:test_vit: 15 tiles; 3 ok" in result.output
    assert len(list((work / "pt_files" / "timm-test_vit").glob("*.pt"))) == 3
    summary = work / "features" / "timm-test_vit" / "summary.csv"
    first = pd.read_csv(summary)
    result = runner.invoke(app, args, env={"COLUMNS": "200"})  # everything done before: reused, timings kept
    assert "extracted 3 slides (3 reused from an earlier run) with timm:test_vit" in result.output
    pd.testing.assert_frame_equal(pd.read_csv(summary), first)
    result = runner.invoke(app, ["encoders"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "mstar-vitl16" in result.output and "resnet50-trunc" in result.output


def test_precision_rules(work):
    with pytest.raises(MstarError, match="fp16 is not supported on CPU"):
        extract_features(work, ENC, precision="fp16", device="cpu", show_progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(MstarError, match="--device cuda: no CUDA device"):
            extract_features(work, ENC, device="cuda", show_progress=False)


def test_bf16_features_agree_with_fp32(work):
    fp32 = extract_features(work, ENC, workers=0, show_progress=False)
    assert (fp32["status"] == "ok").all()
    ref = {p.stem: load_features(p)[0] for p in (work / "features" / "timm-test_vit").glob("*.h5")}
    extract_features(work, ENC, workers=0, precision="bf16", overwrite=True, show_progress=False)
    for p in (work / "features" / "timm-test_vit").glob("*.h5"):
        feats, _, attrs = load_features(p)
        assert attrs["precision"] == "bf16" and _cosine(feats, ref[p.stem]).min() >= 0.99


def test_cmu_slide(cmu_slide, tmp_path):
    from mstar.slide.tiling import TileParams, tile_slide

    tile_slide(cmu_slide, tmp_path, TileParams())
    tf = tmp_path / "tiles" / "CMU-1-Small-Region.h5"
    coords, attrs = read_tiles(tf)
    assert attrs["read_px"] == 256 and len(coords) > 20
    write_tiles(tf, coords[:6], np.ones(6, np.float32), attrs)  # a few tiles keep the test fast
    summary = extract_features(tmp_path, ENC, workers=1, save_pt=True, show_progress=False)
    assert list(summary["status"]) == ["ok"]
    feats, c, fattrs = load_features(tmp_path / "features" / "timm-test_vit" / "CMU-1-Small-Region.h5")
    assert feats.shape == (6, 64) and np.array_equal(c, coords[:6])
    assert fattrs["mpp_level0"] == pytest.approx(0.499)
    assert (tmp_path / "pt_files" / "timm-test_vit" / "CMU-1-Small-Region.pt").exists()
    enc = create_encoder(ENC)
    naive = naive_features(cmu_slide, coords[:6], 0, 256, enc.model, enc.preprocess)
    assert _cosine(feats, naive).min() >= 0.999


def test_device_side_preprocessing_path_gives_the_same_features(work):
    """The CUDA layout (workers send uint8 tiles, the main process resizes) exercised on the CPU."""
    extract_features(work, ENC, workers=1, show_progress=False)
    folder = work / "features" / "timm-test_vit"
    ref = {p.name: load_features(p)[0] for p in folder.glob("*.h5")}
    extract_features(work, ENC, workers=1, preprocess_on="device", overwrite=True, show_progress=False)
    for p in folder.glob("*.h5"):
        np.testing.assert_array_equal(load_features(p)[0], ref[p.name])


def test_a_reused_slide_keeps_its_timing_but_a_failed_or_pending_one_does_not(tmp_path):
    from mstar.utils.summary import merge_summary

    cols = ["slide", "seconds", "status"]
    path = merge_summary(tmp_path / "summary.csv", [{"slide": s, "seconds": 10.0, "status": "ok"}
                                                    for s in ("a", "b", "c")], cols)
    nan = float("nan")
    merge_summary(path, [{"slide": "a", "seconds": nan, "status": "ok"},          # reused
                         {"slide": "b", "seconds": nan, "status": "error"},       # failed this time
                         {"slide": "c", "seconds": nan, "status": "pending"}], cols, keep_old=("seconds",))
    table = pd.read_csv(path).set_index("slide")
    assert table.loc["a", "seconds"] == 10.0
    assert np.isnan(table.loc["b", "seconds"]) and np.isnan(table.loc["c", "seconds"])
