import pickle
from pathlib import Path

import numpy as np
import torch

from mstar.features.dataset import SlideTiles, TileBatches, make_loader
from mstar.features.extract import load_slide_tiles
from mstar.features.preprocess import PreprocessConfig, preprocess_batch
from mstar.slide.reader import open_slide


def _slides(work: Path) -> list[SlideTiles]:
    return [load_slide_tiles(p) for p in sorted((work / "tiles").glob("*.h5"))]


def test_batches_never_straddle_slides(work):
    slides = _slides(work)
    ds = TileBatches(slides, batch_size=2)
    assert ds.index[:3] == [(0, 0, 2), (0, 2, 4), (0, 4, 5)]
    assert len(ds) == 3 * len(slides)
    for s, start, stop in ds.index:
        assert 0 <= start < stop <= len(slides[s].coords) and stop - start <= 2


def test_reads_match_the_slide_reader_and_handles_are_not_pickled(work):
    slides = _slides(work)
    ds = TileBatches(slides, batch_size=4)
    item = ds[0]
    t = slides[0]
    with open_slide(t.slide_path) as slide:
        ref = np.stack([slide.read_region(x, y, t.read_level, t.read_px) for x, y in t.coords[:4]])
    assert item["error"] == "" and item["images"].dtype == torch.uint8
    np.testing.assert_array_equal(item["images"].numpy(), ref)
    assert len(ds._handles) == 1
    clone = pickle.loads(pickle.dumps(ds))  # what a spawn worker receives
    assert len(clone._handles) == 0 and len(ds._handles) == 1
    ds.close()


def test_worker_side_preprocessing_and_loader_order(work):
    slides = _slides(work)
    cfg = PreprocessConfig(input_px=64)
    raw = TileBatches(slides, batch_size=3)
    ds = TileBatches(slides, batch_size=3, preprocess=cfg)
    items = list(make_loader(ds, workers=2, pin_memory=False))
    assert [(b["slide"], b["start"]) for b in items] == [(s, a) for s, a, _ in ds.index]
    for k in (0, 3):
        expected = preprocess_batch(raw[k]["images"], cfg)
        torch.testing.assert_close(items[k]["images"], expected)


def test_unreadable_slide_gives_error_items(tmp_path):
    bad = SlideTiles("ghost", str(tmp_path / "ghost.svs"), np.zeros((3, 2), np.int64), 0, 16)
    ds = TileBatches([bad], batch_size=2)
    a, b = ds[0], ds[1]
    assert "slide file not found" in a["error"] and a["images"].numel() == 0
    assert b["error"] == a["error"]
