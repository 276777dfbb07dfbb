"""A finished classification/survival run as an ensemble of its units' models (one per fold or seed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from mstar.data.feature_dirs import folder_identity, resolve_feature_dir
from mstar.errors import MstarError
from mstar.eval.results import read_predictions_csv
from mstar.run.checkpoint import load_checkpoint
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
        in_dim: The feature width the models take (twice the encoder's for a context run).
    """

    run: Path
    kind: str
    units: list[str]
    models: list[torch.nn.Module]
    classes: list[str] | None
    identity: dict
    risk_cutoffs: list[float]
    in_dim: int
    infos: list[dict] = field(default_factory=list)
    context: bool = False  # trained on multi-resolution bags: [high | low-power context] per tile

    @property
    def multimodal(self) -> bool:
        """Slides + omics (a fusion model): each slide needs its case's omic profile."""
        return bool(self.infos) and self.infos[0].get("task") == "multimodal-survival"


def _training_identity(cfg: dict, run: Path) -> dict:
    """Identity of the run's training features for runs from before the model file recorded it."""
    try:
        folder = resolve_feature_dir(cfg.get("features", ""))
    except MstarError:
        raise MstarError(f"{run}: the run does not record which encoder made its features and its features "
                         f"folder {cfg.get('features')!r} is gone; predict from a features folder "
                         "extracted with the run's encoder") from None
    return folder_identity(folder)


def _val_cutoff(unit_dir: Path) -> float:
    path = unit_dir / "predictions.csv"
    if not path.is_file():
        raise MstarError(f"{unit_dir}: no risk cut-off in model.pt and no predictions.csv to take the "
                         "validation median from; retrain the run with this mstar version")
    preds = read_predictions_csv(path)
    value = float(preds.loc[preds["split"] == "val", "risk"].median())
    if not np.isfinite(value):
        raise MstarError(f"{path}: no validation risks to split risk groups by; retrain the run with this "
                         "mstar version (model.pt then records the training median)")
    return value


def load_run_models(run: str | Path, units: list[str] | None = None) -> RunModels:
    """The models of ``run``'s finished units (all, or those named in ``units``).

    Raises:
        MstarError: not a run folder, no finished unit, an unknown unit, or a run kind `predict` does not
            apply (report, stage-1, multimodal).
    """
    run = run_files.find_run(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    if cfg.get("task") not in ("classify", "survival", "multimodal-survival"):
        kind = cfg.get("task") or run.parent.name
        raise MstarError(f"{run}: a {kind} run; `mstar predict` applies classify, survival and "
                         "multimodal-survival runs (train one with `mstar train ...`)")
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
        path = run_files.unit_dir(run, name) / "model.pt"
        model, info = (_load_fusion(path) if cfg.get("task") == "multimodal-survival"
                       else run_files.load_model(path))
        models.append(model)
        infos.append(info)
    kind = infos[0]["head"]
    cutoffs = []
    if kind == "survival":
        for name, info in zip(names, infos):
            if "risk_cutoff" in info:
                cutoffs.append(float(info["risk_cutoff"]))
                continue
            log.warning("%s: unit %s does not record its training risk cut-off (trained before it was "
                        "recorded); the median validation risk splits the risk groups", run, name)
            cutoffs.append(_val_cutoff(run_files.unit_dir(run, name)))
    identity = infos[0].get("features") or _training_identity(cfg, run)
    return RunModels(run, kind, names, models, infos[0].get("classes"), identity, cutoffs,
                     int(infos[0]["in_dim"]), infos, bool(cfg.get("context", False)))


def _load_fusion(path: Path) -> tuple[torch.nn.Module, dict]:
    """A multimodal-survival unit's fusion model (slides + omics)."""
    from mstar.models.registry import create_model

    blob = load_checkpoint(path, weights_only=False, what="model", hint="; train the run again (--overwrite)")
    info = blob["info"]
    if not info.get("omic_sizes") or int(info["in_dim"]) <= 1:
        lacks = "omics" if not info.get("omic_sizes") else "slides"
        raise MstarError(f"{path}: a {info['model']} model without {lacks}; `mstar predict` applies models "
                         "that take slides and omics")
    model = create_model(info["model"], path_dim=info["in_dim"], omic_sizes=info["omic_sizes"],
                         n_bins=info["n_outputs"], **info.get("model_args", {}))
    model.load_state_dict(blob["model_state_dict"])
    return model.eval(), info


def omics_input(info: dict, profile: pd.Series) -> list[torch.Tensor] | torch.Tensor:
    """A case's omic profile (one row of an omics table, columns by name) as the fusion model takes it:
    the training unit's columns, standardised with its training cases' statistics (missing values become
    the training mean), split into its signature groups (``(1, size)`` each) or the full ``(1, F)``."""
    from mstar.data.omics import OmicsScaler

    columns = info["omic_columns"]
    missing = [c for c in columns if c not in profile.index]
    if len(missing) == len(columns):
        raise MstarError(f"none of the model's {len(columns)} omic columns ({', '.join(columns[:3])}, ...) "
                         "is in the omics table; give the table the run was trained on (same genes)")
    values = profile.reindex(columns).to_numpy(np.float32)[None]  # (1, F); absent genes NaN -> mean
    scaler = OmicsScaler(np.asarray(info["omics_scaler"]["mean"], np.float32),
                         np.asarray(info["omics_scaler"]["std"], np.float32))
    vec = torch.from_numpy(scaler.transform(values))  # (1, F)
    return list(torch.split(vec, info["omic_sizes"], dim=1)) if info.get("omics_mode") == "groups" else vec


@torch.inference_mode()
def fusion_outputs(model: torch.nn.Module, feats: torch.Tensor, omics) -> tuple[dict, np.ndarray, str]:
    """A fusion model on one bag and its case's omics: the risk, the per-tile evidence ``(N,)`` and its
    name. Co-attention models (MCAT, MOTCat) give the genomic-guided co-attention of each signature group
    over the tiles (softmax over tiles), recorded per group (``summary["groups"]``, ``(G, N)``) and averaged
    over groups as the evidence; attention-pooling models give their pooling weights."""
    out = model(feats[None].float(), torch.ones(1, feats.shape[0], dtype=torch.bool), omics=omics)
    summary = {"risk": float(out.survival.risk[0])}
    att = out.attention or {}
    coattn = att.get("coattn")
    if coattn is not None and coattn.shape[-1] == feats.shape[0]:
        per_group = torch.softmax(coattn[0].float().reshape(-1, feats.shape[0]), dim=-1).numpy()  # (G, N)
        summary["groups"] = per_group
        return summary, per_group.mean(axis=0), "co-attention (mean over gene groups)"
    path = att.get("path")
    if path is not None and path.dim() == 2 and path.shape[-1] == feats.shape[0]:
        return summary, torch.softmax(path[0].float(), 0).numpy(), "attention"
    raise MstarError("this fusion model gives no per-tile attention; it has no tile evidence")


@torch.inference_mode()
def unit_outputs(model: torch.nn.Module, feats: torch.Tensor,
                 class_index: int | None = None) -> tuple[dict, np.ndarray, str]:
    """One model on one bag ``feats`` ``(N, D)``: its slide output, its per-tile evidence ``(N,)`` and the
    evidence's name.

    The evidence is the attention when the aggregator pools by attention; otherwise the head applied to each
    output token: the score of the predicted class (``class_index`` when given: an ensemble scores every
    model's tiles for the class the ensemble predicts), or the risk.
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
        chosen = int(summary["probs"].argmax()) if class_index is None else int(class_index)
        return summary, per_tile[:, chosen].float().numpy(), "per-tile class score"
    raise MstarError("this model gives neither attention nor per-tile tokens; it has no tile evidence")
