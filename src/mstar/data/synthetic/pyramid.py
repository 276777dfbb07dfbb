"""Write an Aperio-style pyramidal TIFF (.svs) that OpenSlide opens as a proper pyramid.

One tiled page per level (not SubIFDs), RGB JPEG tiles, and the Aperio ImageDescription with ``MPP`` and
``AppMag`` on the first page, followed by a stripped thumbnail page, as Aperio scanners write them.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import tifffile

from mstar.utils.atomic import atomic_path

TILE_PX = 256
JPEG_QUALITY = 88


def aperio_description(width: int, height: int, mpp: float, app_mag: float, extra: dict | None = None) -> str:
    fields = {"AppMag": f"{app_mag:g}", "MPP": f"{mpp:.4f}", "ScanScope ID": "SYNTH", **(extra or {})}
    head = (f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] "
            f"({TILE_PX}x{TILE_PX}) JPEG/RGB Q={JPEG_QUALITY}")
    return head + "".join(f"|{k} = {v}" for k, v in fields.items())


def write_svs(path: str | os.PathLike, level0: np.ndarray, mpp: float, downsamples=(1, 4, 16),
              extra: dict | None = None) -> None:
    """Write ``level0`` (h, w, 3) uint8 with the given pyramid downsamples, atomically."""
    h, w = level0.shape[:2]
    app_mag = round(10.0 / mpp)
    desc = aperio_description(w, h, mpp, app_mag, extra)
    jpeg = {"compression": "jpeg", "compressionargs": {"level": JPEG_QUALITY}, "photometric": "rgb",
            "metadata": None}
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tif:
        tif.write(level0, tile=(TILE_PX, TILE_PX), description=desc, **jpeg)
        thumb_scale = 768 / max(h, w)
        thumb = cv2.resize(level0, (max(1, round(w * thumb_scale)), max(1, round(h * thumb_scale))),
                           interpolation=cv2.INTER_AREA)
        tif.write(thumb, description=f"Aperio Image Library v12.0.15 \r\n{w}x{h} -> "
                                     f"{thumb.shape[1]}x{thumb.shape[0]}",
                  **jpeg)
        for d in downsamples[1:]:
            lw, lh = max(1, round(w / d)), max(1, round(h / d))
            level = cv2.resize(level0, (lw, lh), interpolation=cv2.INTER_AREA)
            tif.write(level, tile=(TILE_PX, TILE_PX),
                      description=f"Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] "
                                  f"({TILE_PX}x{TILE_PX}) -> {lw}x{lh} JPEG/RGB Q={JPEG_QUALITY}",
                      **jpeg)
