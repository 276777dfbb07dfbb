"""Where things are on a synthetic slide: tissue pieces, holes and the tumour region, at 8 µm/px."""

from __future__ import annotations

import cv2
import numpy as np

MASK_MPP = 8.0  # µm per label-mask pixel
LABEL_BACKGROUND, LABEL_NORMAL, LABEL_TUMOUR = 0, 1, 2
LABEL_NAMES = {LABEL_BACKGROUND: "background", LABEL_NORMAL: "normal", LABEL_TUMOUR: "tumour"}


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered noise (float32)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def draw_layout(rng: np.random.Generator, size_um: tuple[float, float], tumour_fraction: float) -> np.ndarray:
    """Label map (h, w) uint8 at :data:`MASK_MPP`: 0 background (incl. holes), 1 normal, 2 tumour.

    Tissue is one or two lobulated pieces away from the slide border; holes are a few round gaps inside
    tissue; the tumour occupies ``tumour_fraction`` of the tissue as one or more contiguous regions.
    """
    w, h = round(size_um[0] / MASK_MPP), round(size_um[1] / MASK_MPP)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx, yy = xx / w * 2 - 1, yy / h * 2 - 1
    bump = np.full((h, w), -np.inf, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        rx, ry = rng.uniform(0.45, 0.7), rng.uniform(0.5, 0.75)
        bump = np.maximum(bump, 1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2)
    tissue = bump + 0.35 * smooth_noise(rng, (h, w), w / 12) > 0
    margin = max(2, round(40 / MASK_MPP))
    tissue[:margin], tissue[-margin:], tissue[:, :margin], tissue[:, -margin:] = False, False, False, False

    labels = np.where(tissue, LABEL_NORMAL, LABEL_BACKGROUND).astype(np.uint8)
    if tissue.any():
        field = smooth_noise(rng, (h, w), w / 10)
        cut = np.quantile(field[tissue], 1 - tumour_fraction)
        labels[tissue & (field > cut)] = LABEL_TUMOUR
        ys, xs = np.nonzero(tissue)
        for _ in range(int(rng.integers(1, 4))):  # holes: tears and lumina
            k = int(rng.integers(len(xs)))
            radius = rng.uniform(35, 70) / MASK_MPP
            cv2.ellipse(labels, (int(xs[k]), int(ys[k])),
                        (max(1, round(radius)), max(1, round(radius * rng.uniform(0.6, 1.0)))),
                        float(rng.uniform(0, 180)), 0, 360, LABEL_BACKGROUND, -1)
    return labels


def upsample_mask(mask: np.ndarray, shape: tuple[int, int], rng: np.random.Generator | None = None,
                  roughness: float = 0.0) -> np.ndarray:
    """Upsample a boolean mask to ``shape`` (h, w) with smooth, optionally irregular, edges."""
    up = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    up = cv2.GaussianBlur(up, (0, 0), max(1.0, shape[1] / mask.shape[1] / 2))
    if rng is not None and roughness > 0:
        up += roughness * smooth_noise(rng, shape, 3.0)
    return up > 0.5
