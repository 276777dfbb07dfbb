"""An LRU cache of open slides for data loaders: at most ``max_open`` handles, never pickled."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol


class _SlideRef(Protocol):
    slide_path: str | os.PathLike
    mpp: float | None


class SlideHandles:
    """Open slides by index on first use; close the least recently used beyond ``max_open``.

    Pickling (a DataLoader sending its dataset to a worker) drops the open handles, so each worker opens its
    own: a slide handle is never shared between processes.

    Args:
        slides: Items with ``slide_path`` and ``mpp`` (the level-0 µm/px to use, or None for the metadata).
        max_open: Most handles kept open at once.
    """

    def __init__(self, slides: Sequence[_SlideRef], max_open: int) -> None:
        self.slides, self.max_open = slides, max_open
        self._open: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": OrderedDict()}

    def get(self, s: int):
        """The open handle of slide ``s`` (opened now if needed)."""
        from mstar.slide.reader import open_slide

        if s in self._open:
            self._open.move_to_end(s)
            return self._open[s]
        while len(self._open) >= self.max_open:
            self._open.popitem(last=False)[1].close()
        ref = self.slides[s]
        self._open[s] = handle = open_slide(ref.slide_path, mpp=ref.mpp)
        return handle

    def close(self) -> None:
        """Close every open handle."""
        while self._open:
            self._open.popitem()[1].close()
