"""Paths and small readers/writers of a run directory (``runs/<task>/<name>/``).

::

    config.yaml        resolved configuration
    metrics.json       {split: {metric: {value, ci_low, ci_high, n[, sd, per_unit]}}} + _meta
    predictions.csv    one row per (unit, split, case)
    log.csv            per-epoch training log of every unit
    figures/           ROC, confusion matrix, Kaplan-Meier, training curves
    units/<unit>/      model.pt, predictions.csv, metrics.json, log.csv, done.json (written last)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mstar.errors import MstarError
from mstar.run.checkpoint import load_checkpoint, save_checkpoint
from mstar.utils.atomic import atomic_path


def unit_dir(run: Path, unit: str) -> Path:
    return run / "units" / unit


def is_done(path: Path) -> bool:
    return (path / "done.json").exists()


def save_model(path: Path, model: torch.nn.Module, info: dict) -> None:
    """``model.pt``: ``{"model_state_dict", "info"}`` (info holds what is needed to rebuild the model)."""
    save_checkpoint(path, {"model_state_dict": model.state_dict(), "info": info})


def load_model(path: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild an aggregator+head model saved by :func:`save_model`."""
    from mstar.models.registry import create_mil_model

    if not path.exists():
        raise MstarError(f"{path}: no trained model here; is this a finished run directory?")
    blob = load_checkpoint(path, weights_only=False, what="model", hint="; train the run again (--overwrite)")
    info = blob["info"]
    if info.get("task") == "multimodal-survival":
        raise MstarError(f"{path}: a multimodal-survival model (slides + omics); this command applies "
                         "slide-only models")
    model = create_mil_model(info["model"], info["head"], info["n_outputs"], in_dim=info["in_dim"],
                             **info.get("model_args", {}))
    model.load_state_dict(blob["model_state_dict"])
    return model.eval(), info


def find_run(run: str | Path) -> Path:
    run = Path(run)
    if not (run / "config.yaml").exists():
        raise MstarError(f"{run}: not a run directory (no config.yaml); pass runs/<task>/<name>")
    return run


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=float))
