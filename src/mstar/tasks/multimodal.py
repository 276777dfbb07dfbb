"""Multimodal survival (``mstar train multimodal-survival``): slide bags + omics -> discrete-time survival.

Runs on the supervised runner (:func:`mstar.tasks.runner.train_task`) with the survival protocol unchanged:
quartile time bins of the training split, NLLSurv (+ the model's ``aux_loss``, chunk-averaged for MOTCat),
epoch selected on validation only, test reported with bootstrap CIs, k-fold CV (``--folds``) with per-fold
C-index and mean ± sd, figures and the run directory. What this task adds (:class:`MultimodalTask`):

- inputs: a survival manifest (upstream CSV, its multimodal form with per-case RNA files, or a wide TCGA
  table), the omics table (``--rna``) laid out as signature groups or the full vector, and the bags;
- per fold: the omics standardised with the training cases' statistics only;
- models from the fusion registry (MCAT, MOTCat, CMTA, Porpoise, SNN, ABMIL, late fusion).

Also written: ``omics.json`` (source, modalities, layout, signature genes matched per group).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from mstar.data.bags import BagStore
from mstar.data.cohort_tables import read_survival_cohort
from mstar.data.feature_dirs import resolve_feature_dir
from mstar.data.omics import OmicsMatrix, omics_layout, read_omics
from mstar.errors import MstarError
from mstar.tasks.multimodal_config import MultimodalConfig
from mstar.tasks.multimodal_inputs import MultimodalStore
from mstar.tasks.objectives import SurvivalObjective
from mstar.tasks.run_files import write_json
from mstar.tasks.runner import SlideTask, rebuild_args, store_identity, train_task

log = logging.getLogger(__name__)


class FusionSurvivalObjective(SurvivalObjective):
    """NLLSurv as the survival task, plus the model's ``aux_loss`` (CMTA alignment) and, for bags MOTCat
    split into chunks, the per-bag mean of the chunk losses (upstream engine)."""

    def loss(self, out, target):
        if getattr(out, "chunks", None):
            from mstar.models.fusion import fusion_survival_loss

            return fusion_survival_loss(out, target[:, 0].long(), target[:, 1].float())
        loss = super().loss(out, target)
        aux = getattr(out, "aux_loss", None)
        return loss if aux is None else loss + aux.float()


def _case_files(manifest, rna: Path, skip_missing: bool) -> dict[str, str] | None:
    """case -> per-case RNA file named by the manifest's RNA column (upstream multimodal CSV)."""
    if not rna.is_dir() or manifest.rna_column is None:
        return None
    files = dict(zip(manifest.table["case"], manifest.table[manifest.rna_column]))
    if skip_missing:
        files = {c: f for c, f in files.items() if (rna / f).is_file() or Path(f).is_file()}
    return files


class MultimodalTask(SlideTask):
    """The hooks of :class:`SlideTask` for slide + omics inputs; ``summary`` describes the omics used."""

    cpu_bf16_models = ()  # bf16 on the CPU not checked for co-attention / optimal transport: fp32 there

    def __init__(self) -> None:
        self.summary: dict = {}

    def load(self, cfg: MultimodalConfig):
        manifest = read_survival_cohort(cfg.manifest, cfg.folds)
        table = manifest.table
        cases = table["case"].tolist()
        dropped: list[str] = []
        omics_table, layout = None, None
        if cfg.rna:
            rna = Path(cfg.rna)
            omics_table = read_omics(rna, cfg.modalities, _case_files(manifest, rna, cfg.skip_missing))
            signatures = cfg.signatures_path() if cfg.omics_mode == "groups" else None
            layout = omics_layout(omics_table, cfg.omics_mode, signatures)
            without = [c for c in cases if c not in omics_table.values.index]
            if without and not cfg.skip_missing:
                raise MstarError(f"{rna}: no omics for {len(without)} case(s) of {cfg.manifest}: "
                                 f"{', '.join(without[:10])}; pass --skip-missing to drop them")
            dropped += without
            self.summary = _summary(omics_table, layout, signatures)
        keep = [c for c in cases if c not in set(dropped)]
        bags = None
        if cfg.features:
            rows = table[table["case"].isin(keep)]
            bags = BagStore(resolve_feature_dir(cfg.features), rows["case"].tolist(), rows["slides"].tolist(),
                            skip_missing=cfg.skip_missing)
            empty = bags.empty_cases()
            if empty and not cfg.skip_missing:
                raise MstarError(f"{cfg.features}: {len(empty)} case(s) have empty bags (no tissue tiles): "
                                 f"{', '.join(empty[:10])}; pass --skip-missing to drop them")
            keep = [c for c in keep if c in bags.index and c not in set(empty)]
        dropped = sorted(set(cases) - set(keep))
        if dropped:
            log.warning("dropping %d case(s) without omics or features: %s", len(dropped),
                        ", ".join(dropped[:10]))
        omics = None if omics_table is None else OmicsMatrix.build(omics_table, layout, keep)
        if omics is not None:
            self.summary["cases"] = len(keep)
            self.summary["missing_values"] = round(omics.missing_fraction(), 6)
        kept = table[table["case"].isin(set(keep))].reset_index(drop=True)
        return manifest, kept, MultimodalStore(bags, omics), dropped

    def objective(self, cfg: MultimodalConfig, table: pd.DataFrame):
        return FusionSurvivalObjective(cfg.n_bins)

    def for_unit(self, store: MultimodalStore, train: pd.DataFrame) -> MultimodalStore:
        return store.fitted(train["case"].tolist())

    def build_model(self, cfg: MultimodalConfig, n_outputs: int, store: MultimodalStore):
        from mstar.models.registry import create_model

        sizes = None if store.omics is None else store.omics.layout.sizes
        return create_model(cfg.registry_name, path_dim=store.dim, omic_sizes=sizes, n_bins=n_outputs,
                            **cfg.model_args)

    def model_info(self, cfg: MultimodalConfig, model, store: MultimodalStore, objective) -> dict:
        layout = None if store.omics is None else store.omics.layout
        return {"task": cfg.task, "model": cfg.registry_name, "head": "survival",
                "n_outputs": objective.n_outputs, "in_dim": store.dim, "model_args": rebuild_args(cfg, model),
                "features": {} if store.bags is None else store_identity(store.bags),
                "bin_edges": None if objective.edges is None else objective.edges.tolist(),
                "omics_mode": None if layout is None else layout.mode,
                "omic_sizes": None if layout is None else layout.sizes,
                "omic_groups": None if layout is None else layout.names,
                "omic_columns": None if layout is None else layout.columns,
                "omics_scaler": None if store.scaler is None else store.scaler.to_dict()}

    def finish(self, cfg: MultimodalConfig, run: Path, result: dict) -> None:
        """``omics.json``: the omics source, modalities, layout and signature genes matched per group."""
        write_json(run / "omics.json", self.summary)


def _summary(table, layout, signatures) -> dict:
    out = {"source": str(table.source), "modalities": [s.lstrip("_") for s in table.suffixes if s],
           "table_columns": int(table.values.shape[1]), "mode": layout.mode,
           "input_width": len(layout.columns), "group_sizes": layout.sizes}
    if layout.match is not None:
        out["signatures"] = str(signatures)
        out["groups"] = layout.match.summary()
    return out


def train_multimodal(cfg: MultimodalConfig, overwrite: bool = False, progress: bool = True) -> dict:
    """Train and evaluate ``cfg`` (every fold / run); write the run directory and ``omics.json``.

    Returns:
        ``{"run", "metrics", "meta", "omics"}`` (``omics``: what was matched and used).
    """
    result = train_task(cfg, overwrite=overwrite, progress=progress, task=MultimodalTask())
    omics = Path(result["run"]) / "omics.json"
    result["omics"] = json.loads(omics.read_text()) if omics.is_file() else {}
    return result
