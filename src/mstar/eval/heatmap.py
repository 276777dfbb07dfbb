"""Per-patch scores drawn over the slide, and the top-scoring tiles as an image grid.

Generic over the score: attention weights (ABMIL), per-patch head scores (TransMIL tokens), or patch-text
similarity (zero-shot). These are the evidence a pathologist would look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps

from mstar.slide.overlay import save_png
from mstar.slide.reader import open_slide


def _normalise(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = np.nanmin(scores), np.nanmax(scores)
    return (scores - lo) / (hi - lo) if hi > lo else np.full_like(scores, 0.5)


def render_heatmap(slide_path: str | os.PathLike, coords: np.ndarray, tile_px_level0: int, scores: np.ndarray,
                   out_png: str | os.PathLike, title: str = "", max_px: int = 1200, alpha: float = 0.45,
                   slide_mpp: float | None = None) -> Path:
    """Blend a colour map of ``scores`` (one per tile at ``coords``) over the slide thumbnail.

    Scores are min-max normalised per slide (the colour bar reads low → high); tiles without a score keep
    the plain thumbnail.
    """
    cmap = colormaps["inferno"]
    with open_slide(slide_path, mpp=slide_mpp) as slide:
        down = max(1.0, max(slide.dimensions) / max_px)
        thumb = slide.read_downsampled(down)
        down = slide.dimensions[0] / thumb.shape[1]
    h, w = thumb.shape[:2]
    layer = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    side = tile_px_level0 / down
    for (x, y), value in zip(np.asarray(coords) / down, _normalise(scores)):
        x0, y0 = int(round(x)), int(round(y))
        x1, y1 = min(w, int(round(x + side))), min(h, int(round(y + side)))
        layer[y0:y1, x0:x1] += np.array(cmap(value)[:3], np.float32) * 255
        weight[y0:y1, x0:x1] += 1
    covered = weight[..., 0] > 0
    blend = thumb.astype(np.float32)
    mix = layer[covered] / weight[covered]
    blend[covered] = (1 - alpha) * blend[covered] + alpha * mix
    canvas = np.full((h + 40, w, 3), 255, np.uint8)
    canvas[:h] = np.clip(blend, 0, 255).astype(np.uint8)
    bar = (np.array([cmap(v)[:3] for v in np.linspace(0, 1, max(2, w // 3))]) * 255).astype(np.uint8)
    canvas[h + 14:h + 26, 10:10 + bar.shape[0]] = bar[None]
    cv2.putText(canvas, f"low -> high   {title}", (20 + bar.shape[0], h + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    save_png(out_png, canvas)
    return Path(out_png)


def read_top_tiles(slide_path: str | os.PathLike, coords: np.ndarray, read_level: int, read_px: int,
                   scores: np.ndarray, k: int = 16, tile_px: int = 192,
                   slide_mpp: float | None = None) -> list[tuple[int, np.ndarray]]:
    """The ``k`` highest-scoring tiles, best first: ``(index into coords, RGB tile_px x tile_px)``."""
    out = []
    with open_slide(slide_path, mpp=slide_mpp) as slide:
        for i in np.argsort(-np.asarray(scores))[:k]:
            tile = slide.read_region(int(coords[i][0]), int(coords[i][1]), read_level, read_px)
            out.append((int(i), cv2.resize(tile, (tile_px, tile_px), interpolation=cv2.INTER_AREA)))
    return out


def tiles_grid(tiles: list[tuple[int, np.ndarray]], scores: np.ndarray, out_png: str | os.PathLike) -> Path:
    """Tiles from :func:`read_top_tiles` in a grid, rank and score under each."""
    tile_px = tiles[0][1].shape[0] if tiles else 192
    cols = int(np.ceil(np.sqrt(len(tiles)))) or 1
    rows = int(np.ceil(len(tiles) / cols)) or 1
    canvas = np.full((rows * (tile_px + 18), cols * tile_px, 3), 255, np.uint8)
    for rank, (i, tile) in enumerate(tiles):
        r, c = divmod(rank, cols)
        y0, x0 = r * (tile_px + 18), c * tile_px
        canvas[y0:y0 + tile_px, x0:x0 + tile_px] = tile
        cv2.putText(canvas, f"#{rank + 1}  {float(scores[i]):.3g}", (x0 + 4, y0 + tile_px + 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    save_png(out_png, canvas)
    return Path(out_png)


def save_tiles(tiles: list[tuple[int, np.ndarray]], out_dir: str | os.PathLike) -> list[Path]:
    """Tiles from :func:`read_top_tiles` as ``out_dir/rank<NN>.png``."""
    paths = [Path(out_dir) / f"rank{rank:02d}.png" for rank in range(1, len(tiles) + 1)]
    for path, (_, tile) in zip(paths, tiles):
        save_png(path, tile)
    return paths
