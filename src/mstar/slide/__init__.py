"""Stage 1 of the data path: slide files -> tissue -> tile coordinates (+ thumbnails, overlays)."""

from mstar.slide.reader import Slide, open_slide

__all__ = ["Slide", "open_slide"]
