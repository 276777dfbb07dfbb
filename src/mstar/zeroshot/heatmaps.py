"""Per-slide zero-shot heatmaps: each patch's cosine similarity to the predicted class's text embedding."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mstar.data.feature_dirs import feature_file

log = logging.getLogger(__name__)


def similarity_heatmap(model, class_emb: Tensor, feature_path: Path, class_index: int, out_png: Path,
                       title: str) -> Path | None:
    """Draw one slide's patch-text similarity for class ``class_index`` over its thumbnail.

    Returns:
        The PNG, or None (with a warning) when the features carry no coordinates or the slide file named
        by the features is not found.
    """
    from mstar.eval.heatmap import render_heatmap
    from mstar.features.io import load_features
    from mstar.zeroshot.embed import project_patches

    feats, coords, attrs = load_features(feature_path)
    slide_path = attrs.get("slide_path")
    if not attrs.get("coords_known") or "tile_px_level0" not in attrs:
        log.warning("%s: no tile coordinates/size; no heatmap", feature_path)
        return None
    if not slide_path or not Path(slide_path).exists():
        log.warning("%s: slide file %r not found; no heatmap", feature_path, slide_path)
        return None
    x = torch.as_tensor(np.asarray(feats, dtype=np.float32), device=class_emb.device)  # (N, D)
    scores = (project_patches(model, x) @ class_emb[class_index]).cpu().numpy()  # (N,)
    mpp = attrs.get("mpp_level0") if attrs.get("mpp_source") == "override" else None
    return render_heatmap(slide_path, coords, int(attrs["tile_px_level0"]), scores, out_png, title=title,
                          slide_mpp=mpp)


def draw_heatmaps(model, class_emb: Tensor, feature_dir: Path, rows, classes: list[str], out_dir: Path,
                  limit: int, predicted_by: str = "slide") -> list[str]:
    """Heatmaps of the first ``limit`` slides of ``rows`` (``slides``, ``label``, ``predicted`` index)."""
    written: list[str] = []
    for _, row in rows.iterrows():
        for slide in row["slides"]:
            if len(written) >= limit:
                return written
            path = feature_file(feature_dir, slide)
            if path is None:
                continue
            pred = int(row["predicted"])
            title = f"similarity to '{classes[pred]}' (predicted by {predicted_by}; true {row['label']})"
            png = similarity_heatmap(model, class_emb, path, pred, out_dir / f"{slide}_zeroshot.png", title)
            if png is not None:
                written.append(str(png))
    return written
