"""Open a whole-slide image (or a plain image with a known mpp) behind one small interface.

Backends, tried in order: OpenSlide (native library from the ``openslide-bin`` wheel), tiffslide (pure
Python, for TIFF variants OpenSlide rejects), and Pillow for PNG/JPEG images, which carry no reliable
mpp and therefore need one from the caller.
"""

from __future__ import annotations

import contextvars
import logging
import os
from pathlib import Path

import numpy as np

from mstar.errors import MstarError, first_line
from mstar.slide.mpp import mpp_from_properties

PLAIN_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
SLIDE_SUFFIXES = {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif",
                  ".dcm"} | PLAIN_IMAGE_SUFFIXES
log = logging.getLogger(__name__)
MPP_HINT = "pass it with --slide-mpp (0.25 for a 40x scan, 0.5 for 20x)"


def slide_id_of(path: str | os.PathLike) -> str:
    """The slide id used in every output file name: the file name without its last suffix (as CLAM)."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def _flatten_rgba(rgba: np.ndarray) -> np.ndarray:
    """RGBA (non-premultiplied) -> RGB composited over white; transparent areas become background."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.rint(out).astype(np.uint8)


class Slide:
    """A whole-slide image with a known level-0 resolution (µm/px).

    Attributes:
        path: the file.
        slide_id: file name without suffix.
        mpp: level-0 microns per pixel (from metadata, or the caller's override).
        mpp_source: where ``mpp`` came from (``metadata`` or ``override``).
        backend: ``openslide``, ``tiffslide`` or ``image``.
        dimensions: level-0 (width, height) in px.
        level_dimensions: (width, height) per level.
        level_downsamples: downsample factor of each level relative to level 0.
    """

    def __init__(self, path: Path, handle, backend: str, mpp: float, mpp_source: str,
                 level_dimensions: tuple[tuple[int, int], ...], level_downsamples: tuple[float, ...],
                 properties: dict[str, str]):
        self.path = path
        self.slide_id = slide_id_of(path)
        self._handle = handle
        self.backend = backend
        self.mpp = float(mpp)
        self.mpp_source = mpp_source
        self.level_dimensions = level_dimensions
        self.level_downsamples = level_downsamples
        self.properties = properties

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def level_mpp(self, level: int) -> float:
        """µm/px of a pyramid level."""
        return self.mpp * self.level_downsamples[level]

    def read_region(self, x0: int, y0: int, level: int, size_px: int | tuple[int, int]) -> np.ndarray:
        """Read ``size_px`` (w, h) pixels at ``level`` whose top-left is (x0, y0) in level-0 pixels.

        Returns an RGB uint8 array of shape (h, w, 3); area outside the slide reads as white.
        """
        w, h = (size_px, size_px) if isinstance(size_px, int) else size_px
        if self.backend == "openslide":
            return _flatten_rgba(np.asarray(self._handle.read_region((int(x0), int(y0)), level, (w, h))))
        if self.backend == "tiffslide":
            arr = np.asarray(self._handle.read_region((int(x0), int(y0)), level, (w, h), as_array=True))
            return _flatten_rgba(arr) if arr.shape[-1] == 4 else np.ascontiguousarray(arr[..., :3])
        return self._read_image_region(int(x0), int(y0), w, h)

    def _read_image_region(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        img = self._handle  # (H, W, 3) uint8, level 0 only
        out = np.full((h, w, 3), 255, np.uint8)
        H, W = img.shape[:2]
        xs, ys = max(x0, 0), max(y0, 0)
        xe, ye = min(x0 + w, W), min(y0 + h, H)
        if xe > xs and ye > ys:
            out[ys - y0:ye - y0, xs - x0:xe - x0] = img[ys:ye, xs:xe]
        return out

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (no upsampling)."""
        ok = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.0001]
        return max(ok, key=lambda i: self.level_downsamples[i]) if ok else 0

    def read_downsampled(self, downsample: float, max_chunk_px: int = 4096) -> np.ndarray:
        """The whole slide at ``downsample`` relative to level 0, read in chunks from the best level."""
        import cv2

        level = self.best_level_for_downsample(downsample)
        lw, lh = self.level_dimensions[level]
        ld = self.level_downsamples[level]
        scale = ld / downsample  # level px -> output px (<= 1)
        out_w, out_h = (max(1, round(self.dimensions[0] / downsample)),
                        max(1, round(self.dimensions[1] / downsample)))
        out = np.full((out_h, out_w, 3), 255, np.uint8)
        for ly in range(0, lh, max_chunk_px):
            for lx in range(0, lw, max_chunk_px):
                cw, ch = min(max_chunk_px, lw - lx), min(max_chunk_px, lh - ly)
                chunk = self.read_region(round(lx * ld), round(ly * ld), level, (cw, ch))
                ox, oy = round(lx * scale), round(ly * scale)
                ow = min(out_w - ox, max(1, round((lx + cw) * scale) - ox))
                oh = min(out_h - oy, max(1, round((ly + ch) * scale) - oy))
                if ow <= 0 or oh <= 0:
                    continue
                if (ow, oh) != (cw, ch):
                    chunk = cv2.resize(chunk, (ow, oh), interpolation=cv2.INTER_AREA)
                out[oy:oy + oh, ox:ox + ow] = chunk
        return out

    def thumbnail(self, max_px: int = 1024) -> np.ndarray:
        """An RGB thumbnail whose longer side is at most ``max_px``."""
        downsample = max(1.0, max(self.dimensions) / max_px)
        return self.read_downsampled(downsample)

    def close(self) -> None:
        if self.backend in ("openslide", "tiffslide"):
            self._handle.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Slide({self.slide_id!r}, {self.backend}, {self.dimensions[0]}x{self.dimensions[1]} px, "
                f"{self.mpp:.4f} µm/px, levels={self.level_count})")


def _open_openslide(path: Path):
    import openslide

    handle = openslide.OpenSlide(str(path))
    props = dict(handle.properties)
    dims = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
    return handle, "openslide", props, dims, tuple(float(d) for d in handle.level_downsamples)


_OPENING_TIFF: contextvars.ContextVar[bool] = contextvars.ContextVar("mstar_opening_tiff", default=False)


class _QuietWhileOpening(logging.Filter):
    """Drops tifffile's warnings while this thread tries a file with tiffslide: a damaged file's
    "<tifffile.TiffPages @8> invalid page offset" would print a stray line beside open_slide's error, which
    already says what failed. Per thread (a context variable), so the viewer's threads do not interfere."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_OPENING_TIFF.get() and record.levelno < logging.ERROR)


logging.getLogger("tifffile").addFilter(_QuietWhileOpening())


def _open_tiffslide(path: Path):
    import tiffslide

    token = _OPENING_TIFF.set(True)
    try:
        handle = tiffslide.TiffSlide(str(path))
    finally:
        _OPENING_TIFF.reset(token)
    props = {k: str(v) for k, v in handle.properties.items() if v is not None}
    dims = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
    return handle, "tiffslide", props, dims, tuple(float(d) for d in handle.level_downsamples)


def _open_image(path: Path):
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGBA"))
    arr = _flatten_rgba(arr)
    h, w = arr.shape[:2]
    return arr, "image", {}, ((w, h),), (1.0,)


def open_slide(path: str | os.PathLike, mpp: float | None = None, *, only_if_missing: bool = False) -> Slide:
    """Open a slide; ``mpp`` (µm/px at level 0) overrides its metadata.

    With ``only_if_missing`` (``--slide-mpp`` of ``mstar tile`` / ``predict``) ``mpp`` serves only a slide
    whose metadata has none: one value can then serve a folder that mixes slides with and without it, and
    a value more than 5 % away from a slide's own is a warning (one of them is wrong). Re-opening a slide
    with the µm/px its tiles file recorded overrides (the default).

    Raises:
        MstarError: the file is missing or unreadable, or no mpp is known (neither metadata nor ``mpp``).
    """
    path = Path(path)
    if not path.exists():
        raise MstarError(f"{path}: slide file not found")
    if mpp is not None and not mpp > 0:
        raise MstarError(f"{path}: --slide-mpp must be positive, got {mpp}")
    openers = ([_open_image] if path.suffix.lower() in PLAIN_IMAGE_SUFFIXES
               else [_open_openslide, _open_tiffslide])
    errors = []
    for opener in openers:
        try:
            handle, backend, props, dims, downs = opener(path)
            break
        except Exception as exc:  # noqa: BLE001 - each backend raises its own types
            errors.append(f"{opener.__name__[6:]}: "
                          f"{first_line(exc)}")
    else:
        raise MstarError(f"{path}: cannot read this slide ({'; '.join(errors)}); is the file complete and a "
                         "supported format (svs, tif, ndpi, mrxs, scn, png, jpg)?")
    found, source = mpp_from_properties(props), "metadata"
    if found is not None and mpp is not None and only_if_missing and abs(found - float(mpp)) > 0.05 * found:
        log.warning("%s: its metadata says %.4g µm/px; --slide-mpp %g applies only to slides without one "
                    "(`mstar tile --force-slide-mpp` overrides metadata)", path, found, float(mpp))
    if mpp is not None and (found is None or not only_if_missing):
        found, source = float(mpp), "override"  # given, not read
    if found is None:
        if backend in ("openslide", "tiffslide"):
            handle.close()
        raise MstarError(f"{path}: no microns-per-pixel in the slide metadata; {MPP_HINT}")
    return Slide(path, handle, backend, found, source, dims, downs, props)
