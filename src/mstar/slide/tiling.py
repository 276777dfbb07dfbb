"""Tile one slide: segment tissue, lay the grid in physical units, keep tissue tiles, write outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mstar.slide.overlay import draw_tiles_overlay, save_png
from mstar.slide.plan import plan_read
from mstar.slide.reader import open_slide
from mstar.slide.tiles_file import tiles_attrs, write_tiles
from mstar.slide.tissue import TissueParams, grid_coords, segment_slide, tile_tissue_fraction

STATUS_OK = "ok"
STATUS_NO_TISSUE = "no tissue"
STATUS_ERROR = "error"


@dataclass(frozen=True)
class TileParams:
    """What a tile is (physical size) and which tiles are kept."""

    target_mpp: float = 0.5
    tile_px: int = 256
    overlap_px: int = 0
    min_tissue: float = 0.25
    slide_mpp: float | None = None     # µm/px for slides whose metadata has none
    thumbnail_px: int = 1024
    tissue: TissueParams = field(default_factory=TissueParams)
    force_slide_mpp: bool = False      # slide_mpp overrides every slide's metadata (wrong metadata)


def params_key(params: TileParams) -> str:
    """The settings that decide which tiles a slide gets (the thumbnail size does not), as one string
    (``force_slide_mpp`` only when set, so tiles files from before it existed keep their key)."""
    return repr(replace(params, thumbnail_px=0)).replace(", force_slide_mpp=False", "")


def slide_identity(slide_path: str | Path) -> dict:
    """``slide_size`` (bytes) and ``slide_mtime_ns`` of a slide file: a changed file re-tiles."""
    st = Path(slide_path).stat()
    return {"slide_size": int(st.st_size), "slide_mtime_ns": int(st.st_mtime_ns)}


def tiles_path(out_dir: str | Path, slide_id: str) -> Path:
    return Path(out_dir) / "tiles" / f"{slide_id}.h5"


def thumbnail_path(out_dir: str | Path, slide_id: str) -> Path:
    return Path(out_dir) / "thumbnails" / f"{slide_id}.png"


def tile_slide(slide_path: str | Path, out_dir: str | Path, params: TileParams = TileParams()) -> dict:
    """Tile one slide into ``out_dir/tiles/<id>.h5`` and ``out_dir/thumbnails/<id>.png``.

    Returns the summary row (slide, mpp, level, n_tiles, tissue fraction, seconds, status, error).
    Raises :class:`~mstar.errors.MstarError` for unreadable slides or missing mpp.
    """
    start = time.perf_counter()
    identity = slide_identity(slide_path)
    with open_slide(slide_path, mpp=params.slide_mpp, only_if_missing=not params.force_slide_mpp) as slide:
        plan = plan_read(slide.mpp, slide.level_downsamples, params.target_mpp, params.tile_px,
                         params.overlap_px)
        thumb_down = max(1.0, max(slide.dimensions) / params.thumbnail_px)
        thumb = slide.read_downsampled(thumb_down)  # one low-res read serves the overlay and, if fine enough,
                                                    # the mask
        thumb_down = slide.dimensions[0] / thumb.shape[1]
        mask = segment_slide(slide, params.tissue, overview=thumb)
        coords = grid_coords(*slide.dimensions, plan.tile_px_level0, plan.step_px_level0)
        fraction = tile_tissue_fraction(mask, coords, plan.tile_px_level0)
        keep = fraction >= params.min_tissue
        coords, fraction = coords[keep], fraction[keep]
        status = STATUS_OK if len(coords) else STATUS_NO_TISSUE
        caption = (f"{slide.slide_id}  {slide.mpp:.3f} um/px  {len(coords)} tiles of "
                   f"{plan.tile_px_level0 * slide.mpp:.0f} um")
        overlay = draw_tiles_overlay(thumb, thumb_down, mask, coords, plan.tile_px_level0, caption)
        seconds = time.perf_counter() - start
        attrs = tiles_attrs(plan, slide.slide_id, str(Path(slide_path).resolve()), slide.level_dimensions, {
            "min_tissue": float(params.min_tissue),
            "tissue_fraction_slide": mask.fraction,
            "mask_mpp": mask.mask_mpp,
            "fill_holes": bool(params.tissue.fill_holes),
            "min_tissue_area_um2": float(params.tissue.min_tissue_area_um2),
            "min_hole_area_um2": float(params.tissue.min_hole_area_um2),
            "remove_pen": bool(params.tissue.remove_pen),
            "mpp_source": slide.mpp_source,
            "seconds": float(seconds),
            "status": status,
            "tile_params": params_key(params),
            **identity,
        })
        save_png(thumbnail_path(out_dir, slide.slide_id), overlay)
        write_tiles(tiles_path(out_dir, slide.slide_id), coords, fraction, attrs)
        return summary_row(attrs, len(coords))


def summary_row(attrs: dict, n_tiles: int, error: str = "") -> dict:
    """One row of ``tiles/summary.csv`` from a tiles file's attributes."""
    return {
        "slide": attrs.get("slide_id", ""),
        "path": attrs.get("slide_path", ""),
        "mpp": attrs.get("mpp_level0", np.nan),
        "level": attrs.get("read_level", np.nan),
        "read_px": attrs.get("read_px", np.nan),
        "tile_um": attrs.get("tile_px_level0", np.nan) * attrs.get("mpp_level0", np.nan)
        if "tile_px_level0" in attrs else np.nan,
        "n_tiles": n_tiles,
        "tissue_fraction": attrs.get("tissue_fraction_slide", np.nan),
        "seconds": attrs.get("seconds", np.nan),
        "status": attrs.get("status", STATUS_ERROR if error else STATUS_OK),
        "error": error,
    }
