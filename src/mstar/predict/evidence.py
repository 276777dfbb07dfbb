"""The evidence files of one slide: per-tile scores (CSV), QuPath GeoJSON, heatmap, top tiles.

::

    evidence/<slide>.csv          x, y (level-0 px, top-left), tile_px_level0, score, score_sd, rank
                                  (+ coattn_<gene group> per group for co-attention fusion models)
    evidence/<slide>.geojson      tiles as detections (measurements: score, score_sd; class: the prediction),
                                  tissue contours as annotations
    evidence/<slide>_heatmap.png  the scores over the slide thumbnail
    evidence/<slide>_top.png      the top tiles in a grid; evidence/<slide>_tiles/rankNN.png each tile
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.eval.results import write_predictions_csv
from mstar.predict.ensemble import SlidePrediction

log = logging.getLogger(__name__)


def slide_file(attrs: dict) -> tuple[Path | None, float | None]:
    """The slide a features file was made from (None when it is gone) and the mpp it was read with when
    the user overrode the slide's own (``--slide-mpp``)."""
    path = attrs.get("slide_path")
    mpp = float(attrs["mpp_level0"]) if attrs.get("mpp_source") == "override" else None
    return (Path(path) if path and Path(path).is_file() else None), mpp


def write_evidence(out: Path, slide_id: str, coords: np.ndarray, attrs: dict, pred: SlidePrediction,
                   classes: list[str] | None, top_k: int = 8) -> dict:
    """Write the evidence files of one slide under ``out/evidence``; return their paths (relative to
    ``out``) and notes (e.g. images skipped because the slide file is gone)."""
    from mstar.eval.heatmap import read_top_tiles, render_heatmap, save_tiles, tiles_grid
    from mstar.slide.geojson import class_colour, tile_detections, write_geojson

    ev = out / "evidence"
    tile_px = int(attrs.get("tile_px_level0", attrs.get("patch_size_level0", 0)) or 0)
    order = np.argsort(-pred.scores)
    rank = np.empty(len(order), int)
    rank[order] = np.arange(1, len(order) + 1)
    table = pd.DataFrame({"x": coords[:, 0].astype(int), "y": coords[:, 1].astype(int),
                          "tile_px_level0": tile_px, "score": pred.scores, "score_sd": pred.scores_sd,
                          "rank": rank})
    for group, values in pred.groups.items():  # multimodal: each gene group's co-attention over the tiles
        table[f"coattn_{group}"] = values
    files = {"csv": f"evidence/{slide_id}.csv"}
    write_predictions_csv(out / files["csv"], table)
    predicted = pred.row.get("predicted") or f"{pred.row.get('risk_group', '')} risk"
    names = list(classes or ["low risk", "high risk"])
    classification = {"name": predicted, "color": class_colour(predicted, names)}
    measurements = {"score": pred.scores, "score_sd": pred.scores_sd, "rank": rank.astype(float),
                    **{f"coattn {g}": v for g, v in pred.groups.items()}}
    features = tile_detections(coords, tile_px, measurements, classification)
    notes = []
    slide_path, mpp = slide_file(attrs)
    if slide_path is None:
        notes.append(f"slide file {attrs.get('slide_path')!r} not found: no heatmap, tiles or tissue "
                     "contours")
    else:
        features += _tissue(slide_path, mpp, attrs)
        title = f"{pred.score_kind}; {pred.label}"
        files["heatmap"] = f"evidence/{slide_id}_heatmap.png"
        render_heatmap(slide_path, coords, tile_px, pred.scores, out / files["heatmap"], title=title,
                       slide_mpp=mpp)
        level, read_px = int(attrs.get("read_level", 0)), int(attrs.get("read_px", tile_px))
        files["top_grid"] = f"evidence/{slide_id}_top.png"
        top = read_top_tiles(slide_path, coords, level, read_px, pred.scores, k=top_k, tile_px=256,
                             slide_mpp=mpp)  # read once: the grid and the single tiles
        tiles_grid(top, pred.scores, out / files["top_grid"])
        tiles = save_tiles(top, ev / f"{slide_id}_tiles")
        files["top_tiles"] = [str(p.relative_to(out)) for p in tiles]
    files["geojson"] = f"evidence/{slide_id}.geojson"
    write_geojson(out / files["geojson"], features)
    return {"files": files, "notes": notes}


def _tissue(slide_path: Path, mpp: float | None, attrs: dict) -> list[dict]:
    """Tissue contours of the slide, segmented as it was tiled."""
    from mstar.slide.geojson import tissue_annotations
    from mstar.slide.reader import open_slide
    from mstar.slide.tissue import TissueParams, segment_slide

    params = TissueParams.from_attrs(attrs)
    with open_slide(slide_path, mpp=mpp) as slide:
        return tissue_annotations(segment_slide(slide, params))
