import json

import cv2
import h5py
import numpy as np
import openslide
import pytest

from mstar.slide.reader import open_slide
from mstar.slide.tiles_file import read_tiles


def _truth(cohort):
    return json.loads((cohort / "truth.json").read_text())


def test_tiles_file_schema_and_physical_truth(tiny_tiles):
    coords, attrs = read_tiles(next((tiny_tiles / "tiles").glob("*.h5")))
    assert coords.dtype == np.int64 and coords.shape[1] == 2 and len(coords) > 5
    for key in ("mpp_level0", "target_mpp", "tile_px", "read_level", "read_px", "tile_px_level0",
                "patch_size_level0", "level0_magnification", "target_magnification", "slide_path"):
        assert key in attrs
    assert attrs["tile_px_level0"] * attrs["mpp_level0"] == pytest.approx(128.0, rel=0.01)
    # every segmentation setting, so `mstar predict` can segment new slides the same way
    assert (attrs["min_tissue_area_um2"], attrs["min_hole_area_um2"], bool(attrs["remove_pen"]),
            bool(attrs["fill_holes"])) == (2.0e4, 4.0e3, True, False)


def test_clam_reader_reads_the_same_field_of_view_on_a_40x_pyramid(tiny_cohort, tiny_tiles):
    s40 = next(s for c in _truth(tiny_cohort)["cases"] for s in c["slides"] if s["scanner"] == "40x")
    path = tiny_tiles / "tiles" / f"{s40['slide_id']}.h5"
    with h5py.File(path) as f:  # exactly what a CLAM-family reader does
        coords = f["coords"][:]
        level, size = int(f["coords"].attrs["patch_level"]), int(f["coords"].attrs["patch_size"])
    _, attrs = read_tiles(path)
    assert (level, size, attrs["tile_px_level0"]) == (0, 512, 512)
    assert attrs["tile_px"] == 256 and attrs["patch_size_level0"] == 512
    clam = openslide.OpenSlide(attrs["slide_path"])
    x, y = coords[len(coords) // 2]
    clam_tile = np.asarray(clam.read_region((int(x), int(y)), level, (size, size)).convert("RGB"))
    with open_slide(attrs["slide_path"]) as slide:
        ours = slide.read_region(x, y, attrs["read_level"], attrs["read_px"])
    assert np.array_equal(clam_tile, ours)
    assert size * attrs["read_downsample"] * attrs["mpp_level0"] == pytest.approx(128.0)  # µm


def test_tiles_cover_the_planted_tissue_and_not_the_background(tiny_cohort, tiny_tiles):
    truth = _truth(tiny_cohort)
    mask_mpp = truth["mask_mpp"]
    for case in truth["cases"]:
        for s in case["slides"]:
            labels = cv2.imread(str(tiny_cohort / "masks" / f"{s['slide_id']}.png"), cv2.IMREAD_UNCHANGED)
            coords, attrs = read_tiles(tiny_tiles / "tiles" / f"{s['slide_id']}.h5")
            side = attrs["tile_px_level0"] * attrs["mpp_level0"] / mask_mpp  # tile side in mask px
            covered = np.zeros(labels.shape, bool)
            for x, y in coords * attrs["mpp_level0"] / mask_mpp:
                window = labels[round(y):round(y + side), round(x):round(x + side)]
                assert (window > 0).mean() >= 0.15, "a tile lies on background"
                covered[round(y):round(y + side), round(x):round(x + side)] = True
            tissue = labels > 0
            assert (covered & tissue).sum() / tissue.sum() > 0.75, s["slide_id"]


def test_thumbnails_and_summary_written(tiny_cohort, tiny_tiles):
    import pandas as pd

    summary = pd.read_csv(tiny_tiles / "tiles" / "summary.csv")
    n_slides = len(list((tiny_cohort / "slides").glob("*.svs")))
    assert len(summary) == n_slides and set(summary["status"]) == {"ok"}
    assert (summary["n_tiles"] > 0).all()
    thumb = cv2.imread(str(tiny_tiles / "thumbnails" / f"{summary['slide'][0]}.png"))
    assert thumb is not None and max(thumb.shape[:2]) <= 1024
    # the tile grid is drawn in blue (BGR (230, 80, 30))
    assert ((thumb[..., 0] > 200) & (thumb[..., 2] < 60)).sum() > 100
