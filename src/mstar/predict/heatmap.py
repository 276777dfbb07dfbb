"""`mstar heatmap --run RUN --slide ID`: the single-slide case of `mstar predict` (same code, same files),
written into ``<run>/heatmaps/``."""

from __future__ import annotations

from pathlib import Path

from mstar.data.feature_dirs import feature_file, resolve_feature_dir
from mstar.errors import MstarError
from mstar.predict.models import load_run_models
from mstar.predict.run import predict_slide
from mstar.tasks import run_files


def slide_heatmap(run: str | Path, slide_id: str, unit: str | None = None, top_k: int = 8,
                  features: str | Path | None = None) -> dict:
    """Predict one slide of a features folder (default: the run's) with the run's models (all units, or
    ``unit``) and write its evidence under ``<run>/heatmaps/evidence/``; return its record (see
    :func:`mstar.predict.run.predict_slide`)."""
    import yaml

    run = run_files.find_run(run)
    models = load_run_models(run, [unit] if unit else None)
    if models.multimodal:
        raise MstarError(f"{run}: a multimodal run needs each case's omics; use `mstar predict SLIDES --run "
                         f"{run} --omics TABLE` (its evidence is the same, per slide)")
    cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    folder = resolve_feature_dir(features or cfg.get("features", ""))
    path = feature_file(folder, slide_id)
    if path is None:
        raise MstarError(f"{folder}: no features for slide {slide_id!r}; check the id (file name without "
                         "suffix)")
    from mstar.predict.inputs import check_features

    check_features(folder, models)
    return predict_slide(models, slide_id, path, run / "heatmaps", top_k)
