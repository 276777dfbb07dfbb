"""Tissue segmentation at low resolution, in physical units.

Tissue is what is stained: saturation above an Otsu threshold (clamped so an empty slide stays empty),
minus pen ink (blue/green hues, near-black strokes), smoothed, with fragments below a physical area
dropped and small holes filled (large holes kept as background unless ``fill_holes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# OpenCV hue is 0..180. H&E is pink/purple (~125..180 and 0..15); blue and green inks sit in between.
PEN_HUE_RANGE = (35, 125)
PEN_MIN_SATURATION = 100  # inks are vivid (S > 170); dark hematoxylin and debris stay below ~90
BLACK_INK_MAX_VALUE = 45
SATURATION_THRESHOLD_RANGE = (15, 60)  # clamp on the Otsu threshold (0..255)


@dataclass(frozen=True)
class TissueParams:
    """Segmentation settings; areas in µm², resolutions in µm/px."""

    mask_mpp: float = 8.0
    min_tissue_area_um2: float = 2.0e4
    min_hole_area_um2: float = 4.0e3
    fill_holes: bool = False
    remove_pen: bool = True

    @classmethod
    def from_attrs(cls, attrs: dict) -> TissueParams:
        """The segmentation a tiles (or features) file records; the defaults for what older files lack."""
        kinds = {"mask_mpp": float, "min_tissue_area_um2": float, "min_hole_area_um2": float,
                 "fill_holes": bool, "remove_pen": bool}
        return cls(**{k: cast(attrs[k]) for k, cast in kinds.items() if attrs.get(k) is not None})


@dataclass
class TissueMask:
    """Binary tissue mask at ``mask_mpp`` µm/px; ``downsample`` = level-0 px per mask px."""

    tissue: np.ndarray  # (h, w) bool
    pen: np.ndarray     # (h, w) bool, ink removed from ``tissue``
    downsample: float
    mask_mpp: float

    @property
    def fraction(self) -> float:
        return float(self.tissue.mean()) if self.tissue.size else 0.0


def _disk(radius_px: int) -> np.ndarray:
    r = max(1, int(radius_px))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _remove_small(mask: np.ndarray, min_area_px: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
    return keep[labels]


def _fill_holes(mask: np.ndarray, max_hole_px: float | None) -> np.ndarray:
    """Fill background regions enclosed by tissue; only those smaller than ``max_hole_px`` if given."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = (flood[1:-1, 1:-1] == 0)
    if max_hole_px is not None:
        holes = holes & ~_remove_small(holes, max_hole_px)
    return mask | holes


def segment_rgb(rgb: np.ndarray, mpp: float,
                params: TissueParams = TissueParams()) -> tuple[np.ndarray, np.ndarray]:
    """Segment tissue in an RGB uint8 image of ``mpp`` µm/px. Returns ``(tissue, pen)`` bool masks."""
    if rgb.size == 0:
        empty = np.zeros(rgb.shape[:2], bool)
        return empty, empty
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sat_smooth = cv2.medianBlur(sat, 5 if min(sat.shape) >= 5 else 1)
    otsu, _ = cv2.threshold(sat_smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = float(np.clip(otsu, *SATURATION_THRESHOLD_RANGE))
    tissue = sat_smooth > threshold

    pen = np.zeros_like(tissue)
    if params.remove_pen:
        coloured_ink = (sat > PEN_MIN_SATURATION) & (hue >= PEN_HUE_RANGE[0]) & (hue <= PEN_HUE_RANGE[1])
        black_ink = val < BLACK_INK_MAX_VALUE
        pen = cv2.dilate((coloured_ink | black_ink).astype(np.uint8), _disk(round(16 / mpp))).astype(bool)
        pen = _remove_small(pen, (40 / mpp) ** 2)  # ink strokes, not single dark pixels
        tissue &= ~pen

    radius = max(1, round(16 / mpp))  # ~16 µm smoothing
    tissue = cv2.morphologyEx(tissue.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius)).astype(bool)
    tissue = cv2.morphologyEx(tissue.astype(np.uint8), cv2.MORPH_OPEN,
                              _disk(max(1, radius // 2))).astype(bool)
    if params.remove_pen:
        tissue &= ~pen
    tissue = _remove_small(tissue, params.min_tissue_area_um2 / mpp**2)
    max_hole = None if params.fill_holes else params.min_hole_area_um2 / mpp**2
    tissue = _fill_holes(tissue, max_hole)
    return tissue, pen


def segment_slide(slide, params: TissueParams = TissueParams(),
                  overview: np.ndarray | None = None) -> TissueMask:
    """Segment a :class:`~mstar.slide.reader.Slide` at ``params.mask_mpp`` (never finer than level 0).

    ``overview`` is an optional whole-slide image already read at a finer resolution than the mask (the
    thumbnail, say); it is resized instead of reading the slide again.
    """
    downsample = max(1.0, params.mask_mpp / slide.mpp)
    width = max(1, round(slide.dimensions[0] / downsample))
    height = max(1, round(slide.dimensions[1] / downsample))
    if overview is not None and overview.shape[1] >= width:
        rgb = cv2.resize(overview, (width, height), interpolation=cv2.INTER_AREA)
    else:
        rgb = slide.read_downsampled(downsample)
    real_downsample = slide.dimensions[0] / rgb.shape[1]
    tissue, pen = segment_rgb(rgb, slide.mpp * real_downsample, params)
    return TissueMask(tissue=tissue, pen=pen, downsample=real_downsample,
                      mask_mpp=slide.mpp * real_downsample)


def grid_coords(width: int, height: int, tile_px_level0: int, step_px_level0: int) -> np.ndarray:
    """Level-0 top-left corners (N, 2) of every whole tile inside a ``width`` x ``height`` slide."""
    xs = np.arange(0, max(width - tile_px_level0, -1) + 1, step_px_level0, dtype=np.int64)
    ys = np.arange(0, max(height - tile_px_level0, -1) + 1, step_px_level0, dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def tile_tissue_fraction(mask: TissueMask, coords: np.ndarray, tile_px_level0: int) -> np.ndarray:
    """Fraction of each tile's area covered by tissue, from an integral image (vectorised, O(N))."""
    if len(coords) == 0:
        return np.zeros(0, np.float32)
    h, w = mask.tissue.shape
    integral = cv2.integral(mask.tissue.astype(np.uint8))  # (h+1, w+1) int32
    x0 = np.clip(np.rint(coords[:, 0] / mask.downsample), 0, w).astype(np.int64)
    y0 = np.clip(np.rint(coords[:, 1] / mask.downsample), 0, h).astype(np.int64)
    x1 = np.clip(np.rint((coords[:, 0] + tile_px_level0) / mask.downsample), 0, w).astype(np.int64)
    y1 = np.clip(np.rint((coords[:, 1] + tile_px_level0) / mask.downsample), 0, h).astype(np.int64)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return (inside / area).astype(np.float32)
