"""`mstar heatmap --run DIR --slide ID`: the evidence of a trained slide model on one slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from mstar.data.feature_dirs import feature_file, resolve_feature_dir
from mstar.errors import MstarError
from mstar.tasks import run_files


@torch.inference_mode()
def patch_scores(model, feats: torch.Tensor) -> tuple[np.ndarray, str, dict]:
    """Per-patch evidence for one bag ``feats`` (N, D): attention when the aggregator pools by attention,
    else the head applied to each output token (class score of the predicted class, or risk)."""
    out = model(feats[None].float(), torch.ones(1, feats.shape[0], dtype=torch.bool))
    slide = out.slide
    if out.survival is not None:
        summary = {"risk": float(out.survival.risk[0])}
    else:
        probs = torch.softmax(out.logits[0], 0)
        summary = {"predicted": int(probs.argmax()), "probs": probs.tolist()}
    if slide.attention is not None:
        return slide.attention[0].float().numpy(), "attention", summary
    if slide.tokens is not None:
        per_patch = model.head(slide.tokens[0])  # (N, C) or survival output
        if out.survival is not None:
            return per_patch.risk.float().numpy(), "per-patch risk", summary
        return per_patch[:, summary["predicted"]].float().numpy(), "per-patch class score", summary
    raise MstarError("this model gives neither attention nor per-patch tokens; no heatmap is possible")


def slide_heatmap(run: str | Path, slide_id: str, unit: str | None = None, top_k: int = 16,
                  features: str | Path | None = None) -> dict:
    """Write ``heatmaps/<slide>_heatmap.png`` and ``heatmaps/<slide>_top<k>.png`` in the run directory."""
    from mstar.eval.heatmap import render_heatmap, render_top_tiles
    from mstar.features.io import load_features

    run = run_files.find_run(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    units = (sorted(p.name for p in (run / "units").iterdir() if run_files.is_done(p))
             if (run / "units").exists() else [])
    if not units:
        raise MstarError(f"{run}: no finished unit to take a model from")
    unit = unit or units[0]
    if unit not in units:
        raise MstarError(f"{run}: unit {unit!r} not found; finished units: {', '.join(units)}")
    model, info = run_files.load_model(run_files.unit_dir(run, unit) / "model.pt")
    folder = resolve_feature_dir(features or cfg["features"])
    path = feature_file(folder, slide_id)
    if path is None:
        raise MstarError(f"{folder}: no features for slide {slide_id!r}; check the id "
                         "(file name without suffix)")
    feats, coords, attrs = load_features(path)
    if len(feats) == 0:
        raise MstarError(f"{path}: the slide has no tiles (empty bag); nothing to show")
    scores, kind, summary = patch_scores(model, torch.as_tensor(np.asarray(feats)))
    slide_path = attrs.get("slide_path")
    if not slide_path or not Path(slide_path).exists():
        raise MstarError(f"{path}: the slide file {slide_path!r} named by the features is not found; "
                         "heatmaps draw over the slide itself")
    mpp = attrs.get("mpp_level0") if attrs.get("mpp_source") == "override" else None
    out = run / "heatmaps"
    label = (f"risk {summary['risk']:.3f}" if "risk" in summary
             else f"predicted {info['classes'][summary['predicted']]} ({max(summary['probs']):.2f})")
    heat = render_heatmap(slide_path, coords, int(attrs["tile_px_level0"]), scores,
                          out / f"{slide_id}_heatmap.png", title=f"{kind}; {label}", slide_mpp=mpp)
    top = render_top_tiles(slide_path, coords, int(attrs["read_level"]), int(attrs["read_px"]), scores,
                           out / f"{slide_id}_top{top_k}.png", k=top_k, slide_mpp=mpp)
    return {"heatmap": str(heat), "top_tiles": str(top), "score": kind, **summary}
