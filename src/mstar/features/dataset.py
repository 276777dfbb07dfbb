"""Tiles of many slides as batches for a DataLoader; each worker opens its own slide handles lazily.

Item ``k`` of :class:`TileBatches` is a whole batch: up to ``batch_size`` consecutive tiles of ONE slide
(batches never straddle slides, so a slide's batches, and therefore its features, do not depend on which
other slides are processed), read with one handle at the tiling's ``read_level``/``read_px`` and stacked.
Handles are opened inside the worker on first use and never pickled: the dataset drops them when it is
sent to a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mstar.errors import first_line
from mstar.features.preprocess import PreprocessConfig, preprocess_batch
from mstar.slide.handles import SlideHandles


@dataclass
class SlideTiles:
    """One slide to extract.

    Attributes:
        slide_id: output file stem.
        slide_path: the slide file.
        coords: (N, 2) int64 level-0 top-left.
        read_level: pyramid level to read.
        read_px: pixels read at that level (square).
        mpp: level-0 µm/px passed to ``open_slide`` (only when tiling used an override), else None.
        attrs: the tiles file's attributes (copied into the features file).
    """

    slide_id: str
    slide_path: str
    coords: np.ndarray
    read_level: int
    read_px: int
    mpp: float | None = None
    attrs: dict = field(default_factory=dict)


class TileBatches(Dataset):
    """Map-style dataset whose items are batches ``{"slide", "start", "stop", "images", "error"}``.

    ``images`` is uint8 (B, read_px, read_px, 3) when ``preprocess`` is None (the device resizes), else the
    encoder input float32 (B, 3, S, S). A slide that cannot be opened or read yields items with ``error`` set
    (and empty ``images``) instead of raising, so one bad slide does not kill the loader.
    """

    def __init__(self, slides: list[SlideTiles], batch_size: int, preprocess: PreprocessConfig | None = None,
                 max_open: int = 4):
        self.slides = slides
        self.preprocess = preprocess
        self.max_open = max_open
        self.index = [(s, start, min(start + batch_size, len(t.coords)))
                      for s, t in enumerate(slides) for start in range(0, len(t.coords), batch_size)]
        self._handles = SlideHandles(self.slides, max_open)
        self._failed: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_failed"] = {}  # (SlideHandles drops its open handles itself)
        return state

    def read(self, s: int, start: int, stop: int) -> torch.Tensor:
        """Tiles ``start:stop`` of slide ``s`` as uint8 (B, read_px, read_px, 3)."""
        t = self.slides[s]
        slide = self._handles.get(s)
        out = np.empty((stop - start, t.read_px, t.read_px, 3), np.uint8)
        for i, (x, y) in enumerate(t.coords[start:stop]):
            out[i] = slide.read_region(int(x), int(y), t.read_level, t.read_px)
        return torch.from_numpy(out)

    def __getitem__(self, k: int) -> dict:
        s, start, stop = self.index[k]
        item = {"slide": s, "start": start, "stop": stop, "error": ""}
        if s in self._failed:
            return {**item, "images": torch.empty(0, dtype=torch.uint8), "error": self._failed[s]}
        try:
            images = self.read(s, start, stop)  # (B, h, w, 3) uint8
            if self.preprocess is not None:
                images = preprocess_batch(images, self.preprocess)  # (B, 3, S, S) float32
        except Exception as exc:  # noqa: BLE001 - reported per slide by the extractor
            message = first_line(exc, limit=10_000)
            self._failed[s] = message
            return {**item, "images": torch.empty(0, dtype=torch.uint8), "error": message}
        return {**item, "images": images}

    def close(self) -> None:
        self._handles.close()


def make_loader(dataset: TileBatches, workers: int, pin_memory: bool,
                prefetch_batches: int = 2) -> DataLoader:
    """An in-order DataLoader over whole batches (``batch_size=None``: the dataset already batches)."""
    return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=prefetch_batches if workers > 0 else None, persistent_workers=False)
