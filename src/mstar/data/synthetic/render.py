"""Render an H&E-like slide at any µm/px from its layout and the case's latent truth.

Sizes are physical (µm) and converted to pixels at the scan's resolution, so a 40x and a 20x scan of
the same case show the same morphology. Cancer types differ in nuclear size, density and arrangement
(glands, solid sheets with keratin pearls, clear-cell nests with capillaries); TP53-mutant cases have
slightly larger, darker, more pleomorphic nuclei; grade scales nuclear size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mstar.data.synthetic.layout import LABEL_TUMOUR, MASK_MPP, smooth_noise, upsample_mask
from mstar.data.synthetic.truth import CaseTruth
from mstar.data.synthetic.types import CANCER_TYPES, CancerType

COLOUR_MPP = 1.0                     # µm/px of the smooth colour field
BACKGROUND_RGB = (243, 242, 245)
STROMA_RGB = (234, 168, 198)
LUMEN_RGB = (247, 236, 243)
SHIFT = 4                            # cv2 sub-pixel bits
_ONE = 1 << SHIFT


class Canvas:
    """Level-0 RGB image with drawing helpers in µm."""

    def __init__(self, rgb: np.ndarray, mpp: float):
        self.rgb, self.mpp = rgb, mpp

    def _pt(self, x_um: float, y_um: float) -> tuple[int, int]:
        return int(round(x_um / self.mpp * _ONE)), int(round(y_um / self.mpp * _ONE))

    def _len(self, um: float) -> int:
        return max(_ONE // 2, int(round(um / self.mpp * _ONE)))

    def ellipse(self, x, y, a_um, b_um, angle_deg, rgb, filled=True, thickness_um=1.0):
        thick = -1 if filled else max(1, round(thickness_um / self.mpp))
        cv2.ellipse(self.rgb, self._pt(x, y), (self._len(a_um), self._len(b_um)), float(angle_deg), 0, 360,
                    tuple(int(c) for c in rgb), thick, cv2.LINE_AA, SHIFT)

    def polyline(self, pts_um: np.ndarray, rgb, thickness_um: float):
        pts = np.round(np.asarray(pts_um) / self.mpp * _ONE).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(self.rgb, [pts], False, tuple(int(c) for c in rgb),
                      max(1, round(thickness_um / self.mpp)), cv2.LINE_AA, SHIFT)


def _colour_field(rng, labels, ctype: CancerType, size_um) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth colour image at :data:`COLOUR_MPP` plus tissue / tumour masks at that resolution."""
    w, h = round(size_um[0] / COLOUR_MPP), round(size_um[1] / COLOUR_MPP)
    tissue = upsample_mask(labels > 0, (h, w), rng, roughness=0.12)
    tumour = upsample_mask(labels == LABEL_TUMOUR, (h, w), rng, roughness=0.12) & tissue
    # Stroma: eosin pink with oriented collagen fibres (a line-kernel filter of noise).
    angle = rng.uniform(0, math.pi)
    kernel = np.zeros((21, 21), np.float32)
    c, s = math.cos(angle), math.sin(angle)
    cv2.line(kernel, (int(10 - 9 * c), int(10 - 9 * s)), (int(10 + 9 * c), int(10 + 9 * s)), 1.0, 1)
    fibres = cv2.filter2D(rng.standard_normal((h, w)).astype(np.float32), -1, kernel / kernel.sum())
    fibres /= fibres.std() + 1e-6
    img = np.empty((h, w, 3), np.float32)
    img[:] = BACKGROUND_RGB
    stroma = np.array(STROMA_RGB, np.float32) + 16 * fibres[..., None] * np.array([0.4, 1.0, 0.7], np.float32)
    img[tissue] = stroma[tissue]
    cyto = np.array(ctype.cytoplasm_rgb, np.float32) + 6 * smooth_noise(rng, (h, w), 4)[..., None]
    img[tumour] = cyto[tumour]
    return np.clip(img, 0, 255), tissue, tumour


def _sample_points(rng, mask: np.ndarray, spacing_um: float, jitter: float = 0.35) -> np.ndarray:
    """Jittered-grid points (µm) with the given spacing, kept where ``mask`` (at COLOUR_MPP) is true."""
    h, w = mask.shape
    gx, gy = np.meshgrid(np.arange(spacing_um / 2, w * COLOUR_MPP, spacing_um),
                         np.arange(spacing_um / 2, h * COLOUR_MPP, spacing_um))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    pts += rng.uniform(-jitter, jitter, pts.shape) * spacing_um
    ix = np.clip((pts[:, 0] / COLOUR_MPP).astype(int), 0, w - 1)
    iy = np.clip((pts[:, 1] / COLOUR_MPP).astype(int), 0, h - 1)
    return pts[mask[iy, ix]]


def _nucleus(canvas, rng, x, y, radius_um, elongation, rgb, angle=None, pleomorphism=0.14, nucleolus=0.0):
    r = radius_um * float(np.exp(rng.normal(0, pleomorphism)))
    e = elongation * float(np.exp(rng.normal(0, pleomorphism / 2)))
    dark = float(np.clip(rng.normal(1.0, 0.07), 0.8, 1.2))
    colour = np.clip(np.array(rgb) * dark, 0, 255)
    angle = rng.uniform(0, 180) if angle is None else angle
    canvas.ellipse(x, y, r * math.sqrt(e), r / math.sqrt(e), angle, colour)
    if nucleolus and rng.random() < nucleolus:
        canvas.ellipse(x + rng.normal(0, r / 4), y + rng.normal(0, r / 4), 0.6, 0.6, 0, colour * 0.55)


def _draw_normal(canvas, rng, tissue_normal, fibre_angle_deg):
    for x, y in _sample_points(rng, tissue_normal, 26.0, jitter=0.5):  # fibroblasts along the fibres
        _nucleus(canvas, rng, x, y, 2.6, 4.0, (104, 70, 150), angle=fibre_angle_deg + rng.normal(0, 12))
    for x, y in _sample_points(rng, tissue_normal, 48.0, jitter=0.5):  # lymphocytes
        _nucleus(canvas, rng, x, y, 2.3, 1.05, (52, 30, 96), pleomorphism=0.05)


def _draw_tumour(canvas, rng, case: CaseTruth, ctype: CancerType, tumour: np.ndarray):
    grade_scale = 0.82 + 0.12 * case.grade
    marker_scale = 1.12 if case.marker else 1.0
    radius = ctype.nucleus_radius_um * grade_scale * marker_scale
    pleo = 0.26 if case.marker else 0.13
    nuc_rgb = np.array(ctype.nucleus_rgb) * (0.86 if case.marker else 1.0)
    if ctype.arrangement == "glands":
        for gx, gy in _sample_points(rng, tumour, 62.0, jitter=0.3):
            lumen = rng.uniform(12, 22)
            canvas.ellipse(gx, gy, lumen + 10, lumen + 10, 0, (205, 128, 182))
            canvas.ellipse(gx, gy, lumen, lumen * rng.uniform(0.75, 1.0), rng.uniform(0, 180), LUMEN_RGB)
            n = max(6, int(2 * math.pi * (lumen + 4) / (2.3 * radius)))
            for k in range(n):
                t = 2 * math.pi * (k + rng.uniform(-0.2, 0.2)) / n
                _nucleus(canvas, rng, gx + (lumen + 4) * math.cos(t), gy + (lumen + 4) * math.sin(t), radius,
                         ctype.nucleus_elongation, nuc_rgb, angle=math.degrees(t), pleomorphism=pleo,
                         nucleolus=0.2)
        for x, y in _sample_points(rng, tumour, 30.0, jitter=0.5):  # single infiltrating cells
            _nucleus(canvas, rng, x, y, radius, ctype.nucleus_elongation, nuc_rgb, pleomorphism=pleo)
    elif ctype.arrangement == "sheets":
        pearls = _sample_points(rng, tumour, 140.0, jitter=0.4)
        pearl_r = rng.uniform(14, 26, len(pearls))
        for (px, py), pr in zip(pearls, pearl_r):
            for ring in np.linspace(pr, 3, 5):
                canvas.ellipse(px, py, ring, ring * 0.85, 0, (246, 128 + ring, 150), filled=False,
                               thickness_um=2.5)
        for x, y in _sample_points(rng, tumour, ctype.cell_spacing_um):
            if len(pearls) and np.min(np.hypot(pearls[:, 0] - x, pearls[:, 1] - y) - pearl_r) < 2:
                continue
            _nucleus(canvas, rng, x, y, radius, ctype.nucleus_elongation, nuc_rgb, pleomorphism=pleo,
                     nucleolus=0.4)
    else:  # nests of clear cells with delicate capillaries
        spacing = ctype.cell_spacing_um
        for x, y in _sample_points(rng, tumour, spacing, jitter=0.2):
            canvas.ellipse(x, y, spacing * 0.52, spacing * 0.48, rng.uniform(0, 180), (214, 150, 186),
                           filled=False, thickness_um=0.9)
            _nucleus(canvas, rng, x + rng.normal(0, 1.5), y + rng.normal(0, 1.5), radius,
                     ctype.nucleus_elongation, nuc_rgb, pleomorphism=pleo)
        for sx, sy in _sample_points(rng, tumour, 90.0, jitter=0.5):
            heading = rng.uniform(0, 2 * math.pi) + rng.normal(0, 0.25, 16).cumsum()
            steps = np.stack([np.cos(heading), np.sin(heading)], 1).cumsum(0) * 6
            canvas.polyline(np.array([sx, sy]) + steps, (196, 58, 76), 1.4)


def _draw_pen(canvas, rng, size_um):
    """A marker stroke across part of the slide (blue or green ink, partly over tissue)."""
    w, h = size_um
    x = rng.uniform(0.05, 0.25) * w if rng.random() < 0.5 else rng.uniform(0.75, 0.95) * w
    ys = np.linspace(rng.uniform(0.05, 0.3) * h, rng.uniform(0.6, 0.9) * h, 6)
    xs = x + rng.normal(0, 0.03 * w, 6).cumsum()
    colour = (38, 78, 196) if rng.random() < 0.5 else (42, 140, 78)
    layer = canvas.rgb.copy()
    Canvas(layer, canvas.mpp).polyline(np.stack([xs, ys], 1), colour, rng.uniform(25, 40))
    cv2.addWeighted(layer, 0.75, canvas.rgb, 0.25, 0, dst=canvas.rgb)


def render_slide(case: CaseTruth, labels: np.ndarray, mpp: float, seed: int, has_pen: bool) -> np.ndarray:
    """Render the level-0 RGB image (h, w, 3) uint8 of one slide of ``case`` at ``mpp`` µm/px."""
    rng = np.random.default_rng(seed)
    ctype = CANCER_TYPES[case.cancer_type]
    size_um = (labels.shape[1] * MASK_MPP, labels.shape[0] * MASK_MPP)
    colour, tissue, tumour = _colour_field(rng, labels, ctype, size_um)
    w, h = round(size_um[0] / mpp), round(size_um[1] / mpp)
    rgb = cv2.resize(colour, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    canvas = Canvas(rgb, mpp)
    _draw_normal(canvas, rng, tissue & ~tumour, fibre_angle_deg=rng.uniform(0, 180))
    _draw_tumour(canvas, rng, case, ctype, tumour)
    # Dust and scanner noise on the glass, then optics blur.
    for x, y in rng.uniform(0, 1, (int(rng.integers(5, 25)), 2)) * np.array(size_um):
        canvas.ellipse(x, y, rng.uniform(1, 4), rng.uniform(1, 4), 0, (205, 205, 210))
    if has_pen:
        _draw_pen(canvas, rng, size_um)
    noise = np.rint(rng.normal(0, 2.5, (max(1, h // 2), max(1, w // 2))))
    up = cv2.resize(np.clip(noise, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    down = cv2.resize(np.clip(-noise, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    rgb = cv2.GaussianBlur(rgb, (0, 0), max(0.3, 0.3 / mpp))
    rgb = cv2.add(rgb, cv2.merge([up, up, up]))  # saturating uint8 arithmetic
    return cv2.subtract(rgb, cv2.merge([down, down, down]))
