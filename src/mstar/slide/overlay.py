"""Pictures a person checks by eye: the tissue contour and the tile grid over the slide thumbnail."""

from __future__ import annotations

import os

import cv2
import numpy as np

from mstar.slide.tissue import TissueMask
from mstar.utils.atomic import atomic_path

TISSUE_RGB = (0, 170, 0)
TILE_RGB = (30, 80, 230)
PEN_RGB = (230, 0, 0)


def draw_tiles_overlay(thumb: np.ndarray, thumb_downsample: float, mask: TissueMask | None,
                       coords: np.ndarray, tile_px_level0: int, caption: str = "") -> np.ndarray:
    """Return a copy of ``thumb`` with the tissue contour (green), ink (red) and tiles (blue) drawn."""
    canvas = thumb.copy()
    h, w = canvas.shape[:2]
    if mask is not None:
        for layer, colour in ((mask.tissue, TISSUE_RGB), (mask.pen, PEN_RGB)):
            if not layer.any():
                continue
            resized = cv2.resize(layer.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(resized, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(canvas, contours, -1, colour, thickness=max(1, round(min(h, w) / 400)))
    side = tile_px_level0 / thumb_downsample
    for x, y in np.asarray(coords, dtype=np.float64) / thumb_downsample:
        cv2.rectangle(canvas, (int(round(x)), int(round(y))),
                      (int(round(x + side)) - 1, int(round(y + side)) - 1), TILE_RGB, 1)
    if caption:
        scale = max(0.35, min(h, w) / 900)
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(canvas, (0, 0), (tw + 8, th + base + 8), (255, 255, 255), -1)
        cv2.putText(canvas, caption, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB image as PNG, atomically."""
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(buf.tobytes())
