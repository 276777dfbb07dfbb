import cv2
import numpy as np

from mstar.slide.tissue import TissueMask, TissueParams, grid_coords, segment_rgb, tile_tissue_fraction

MPP = 8.0  # µm/px of the test images


def _scene(seed=0):
    """White glass with noise, a pink tissue disc (radius 400 µm) with a 160 µm hole, a speck, a pen
    stroke."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(243, 3, (160, 200, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros(img.shape[:2], np.uint8)
    cv2.circle(truth, (90, 80), 50, 1, -1)
    cv2.circle(truth, (90, 80), 10, 0, -1)  # hole: 20 px = 160 µm across
    img[truth == 1] = (225, 150, 190)
    cv2.circle(img, (180, 20), 1, (180, 100, 150), -1)  # 24 µm speck
    pen = np.zeros_like(truth)
    cv2.line(pen, (150, 10), (150, 150), 1, 5)
    img[pen == 1] = (40, 80, 200)
    return img, truth.astype(bool), pen.astype(bool)


def test_tissue_found_pen_and_specks_removed_holes_kept():
    img, truth, pen = _scene()
    tissue, pen_found = segment_rgb(img, MPP)
    inter = (tissue & truth).sum()
    assert inter / truth.sum() > 0.95          # recall
    assert inter / tissue.sum() > 0.95         # precision: no pen, no speck, no background
    assert not tissue[pen].any() and pen_found[pen].mean() > 0.9
    assert not tissue[75:86, 85:96].any()      # the 160 µm hole stays background


def test_fill_holes_option_fills_the_hole():
    img, truth, _ = _scene()
    tissue, _ = segment_rgb(img, MPP, TissueParams(fill_holes=True))
    assert tissue[80, 90]


def test_blank_and_noisy_glass_has_no_tissue():
    rng = np.random.default_rng(1)
    glass = np.clip(rng.normal(240, 4, (100, 100, 3)), 0, 255).astype(np.uint8)
    tissue, _ = segment_rgb(glass, MPP)
    assert not tissue.any()


def test_tile_tissue_fraction_matches_brute_force():
    rng = np.random.default_rng(2)
    mask = TissueMask(tissue=rng.random((50, 70)) > 0.6, pen=np.zeros((50, 70), bool), downsample=16.0,
                      mask_mpp=4.0)
    coords = grid_coords(70 * 16, 50 * 16, 128, 96)
    got = tile_tissue_fraction(mask, coords, 128)
    for (x, y), frac in zip(coords, got):
        window = mask.tissue[round(y / 16):round((y + 128) / 16), round(x / 16):round((x + 128) / 16)]
        assert frac == np.float32(window.mean())


def test_grid_contains_only_whole_tiles():
    coords = grid_coords(1000, 600, 256, 256)
    assert coords[:, 0].max() + 256 <= 1000 and coords[:, 1].max() + 256 <= 600
    assert len(coords) == 3 * 2
    assert len(grid_coords(100, 100, 256, 256)) == 0
