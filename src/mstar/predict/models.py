"""A finished classification/survival run as an ensemble of its units' models (one per fold or seed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from mstar.data.feature_dirs import FEATURE_SUFFIXES, features_identity, resolve_feature_dir
from mstar.errors import MstarError
from mstar.tasks import run_files

log = logging.getLogger(__name__)


@dataclass
class RunModels:
    """The models of a run's finished units and what predicting with them needs.

    Attributes:
        run: The run folder.
        kind: ``classification`` or ``survival``.
        units: Unit names (folds or seeds), one per model.
        models: The models, in eval mode.
        classes: Class names (classification).
        identity: The encoder and tiling of the training features (``features_identity``).
        risk_cutoffs: Per unit, the median training risk splitting new slides into low/high risk (survival).
        in_dim: The feature width the models take.
    """

    run: Path
    kind: str
    units: list[str]
    models: list[torch.nn.Module]
    classes: list[str] | None
    identity: dict
    risk_cutoffs: list[float]
    in_dim: int


def _training_identity(cfg: dict, run: Path) -> dict:
    """Identity of the run's training features for runs from before the model file recorded it."""
    try:
        folder = resolve_feature_dir(cfg.get("features", ""))
    except MstarError:
        raise MstarError(f"{run}: the run does not record which encoder made its features and its features "
                         f"folder {cfg.get('features')!r} is gone; predict from a features folder "
                         "extracted with the run's encoder") from None
    files = sorted(p for p in folder.iterdir() if p.suffix in FEATURE_SUFFIXES)
    return features_identity(files[0]) if files else {}


def _val_cutoff(unit_dir: Path) -> float:
    preds = pd.read_csv(unit_dir / "predictions.csv")
    return float(preds.loc[preds["split"] == "val", "risk"].median())


def load_run_models(run: str | Path, units: list[str] | None = None) -> RunModels:
    """The models of ``run``'s finished units (all, or those named in ``units``).

    Raises:
        MstarError: not a run folder, no finished unit, an unknown unit, or a run kind `predict` does not
            apply (report, stage-1, multimodal).
    """
    run = run_files.find_run(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    if cfg.get("task") not in ("classify", "survival"):
        kind = cfg.get("task") or run.parent.name
        raise MstarError(f"{run}: a {kind} run; `mstar predict` applies classify and survival runs "
                         "(train one with `mstar train classify|survival`)")
    done = (sorted(p.name for p in (run / "units").iterdir() if run_files.is_done(p))
            if (run / "units").is_dir() else [])
    if not done:
        raise MstarError(f"{run}: no finished unit to take a model from (is the run still training?)")
    unknown = sorted(set(units or []) - set(done))
    if unknown:
        raise MstarError(f"{run}: unit(s) {', '.join(unknown)} not found; finished units: {', '.join(done)}")
    names = list(units) if units else done
    models, infos = [], []
    for name in names:
        model, info = run_files.load_model(run_files.unit_dir(run, name) / "model.pt")
        models.append(model)
        infos.append(info)
    kind = infos[0]["head"]
    cutoffs = []
    if kind == "survival":
        for name, info in zip(names, infos):
            if "risk_cutoff" not in info:
                log.warning("%s: unit %s does not record its training risk cut-off (trained before it "
                            "was recorded); the median validation risk splits the risk groups", run, name)
            cutoffs.append(float(info.get("risk_cutoff", _val_cutoff(run_files.unit_dir(run, name)))))
    identity = infos[0].get("features") or _training_identity(cfg, run)
    return RunModels(run, kind, names, models, infos[0].get("classes"), identity, cutoffs,
                     int(infos[0]["in_dim"]))


@torch.inference_mode()
def unit_outputs(model: torch.nn.Module, feats: torch.Tensor) -> tuple[dict, np.ndarray, str]:
    """One model on one bag ``feats`` ``(N, D)``: its slide output, its per-tile evidence ``(N,)`` and the
    evidence's name.

    The evidence is the attention when the aggregator pools by attention; otherwise the head applied to each
    output token: the score of the predicted class, or the risk.
    """
    out = model(feats[None].float(), torch.ones(1, feats.shape[0], dtype=torch.bool))
    slide = out.slide
    if out.survival is not None:
        summary = {"risk": float(out.survival.risk[0])}
    else:
        probs = torch.softmax(out.logits[0].float(), 0)  # (C,)
        summary = {"probs": probs.numpy()}
    if slide.attention is not None:
        return summary, slide.attention[0].float().numpy(), "attention"
    if slide.tokens is not None:
        per_tile = model.head(slide.tokens[0])  # (N, C) logits or a survival output
        if out.survival is not None:
            return summary, per_tile.risk.float().numpy(), "per-tile risk"
        return summary, per_tile[:, int(summary["probs"].argmax())].float().numpy(), "per-tile class score"
    raise MstarError("this model gives neither attention nor per-tile tokens; it has no tile evidence")
