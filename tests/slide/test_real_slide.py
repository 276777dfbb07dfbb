"""The real Aperio slide CMU-1-Small-Region (0.499 µm/px, one level): tiles cover tissue, not glass."""

import cv2
import numpy as np
import pytest

from mstar.slide.batch import tile_many
from mstar.slide.reader import open_slide
from mstar.slide.tiles_file import read_tiles

pytestmark = pytest.mark.shared_data


def _stained(rgb: np.ndarray) -> np.ndarray:
    """Independent tissue test: saturation above 20 (of 255) after a light blur."""
    return cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2HSV)[..., 1] > 20


def test_cmu_tiles_cover_tissue_and_none_of_the_background(cmu_slide, tmp_path):
    summary = tile_many([cmu_slide], tmp_path, show_progress=False)
    assert summary.loc[0, "status"] == "ok"
    coords, attrs = read_tiles(tmp_path / "tiles" / "CMU-1-Small-Region.h5")
    assert (attrs["mpp_level0"] == pytest.approx(0.499) and attrs["read_px"] == 256
            and attrs["read_level"] == 0)
    assert attrs["patch_size"] == 256 and attrs["patch_level"] == 0  # CLAM attrs describe this read
    with open_slide(cmu_slide) as slide:
        for x, y in coords:
            tile = slide.read_region(x, y, 0, 256)
            assert _stained(tile).mean() > 0.1, f"tile at {(x, y)} is mostly glass"
        overview = slide.read_downsampled(8)
    stained = _stained(overview)
    stained = cv2.morphologyEx(stained.astype(np.uint8), cv2.MORPH_OPEN,
                               np.ones((5, 5), np.uint8)).astype(bool)
    covered = np.zeros_like(stained)
    for x, y in coords // 8:
        covered[y:y + 32, x:x + 32] = True
    assert (covered & stained).sum() / stained.sum() > 0.8
    assert (tmp_path / "thumbnails" / "CMU-1-Small-Region.png").stat().st_size > 10_000
