"""Train and evaluate a supervised slide-level task (``mstar train classify|survival``)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mstar.data.bags import BagDataset, BagStore, collate_bags
from mstar.data.feature_dirs import folder_identity, resolve_feature_dir
from mstar.data.manifest import read_manifest
from mstar.errors import MstarError
from mstar.eval.over_units import mean_over_units, unit_metrics
from mstar.eval.results import (
    read_metrics_json,
    read_metrics_meta,
    read_predictions_csv,
    write_metrics_json,
    write_predictions_csv,
)
from mstar.run.callbacks import BestEpoch
from mstar.run.folder import open_run
from mstar.run.harness import fit
from mstar.run.module import write_log
from mstar.tasks import run_files
from mstar.tasks.config import TrainConfig
from mstar.tasks.lightning_module import SlideTaskModule, as_batch
from mstar.tasks.objectives import SurvivalObjective, make_objective
from mstar.tasks.units import Unit, make_units

log = logging.getLogger(__name__)
HEAD = {"classify": "classification", "survival": "survival"}


def _loader(store, rows, targets, cfg, train: bool, seed: int) -> DataLoader:
    cases, max_patches = rows["case"].tolist(), cfg.max_patches if train else None
    if hasattr(store, "dataset"):  # a store with extra per-case model inputs (multimodal) builds its own
        ds, collate = store.dataset(cases, targets, max_patches, train, seed), store.collate
    else:
        ds, collate = BagDataset(store, cases, targets, max_patches, train, seed), collate_bags
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=train, collate_fn=collate,
                      num_workers=cfg.num_workers,
                      generator=torch.Generator().manual_seed(seed) if train else None,
                      pin_memory=torch.cuda.is_available())


def build_model(cfg: TrainConfig, n_outputs: int, in_dim: int):
    """The aggregator + head of ``cfg``, initialised from a stage-1 aggregator when asked."""
    from mstar.models.registry import create_mil_model

    if not cfg.stage1:
        return create_mil_model(cfg.model, HEAD[cfg.task], n_outputs, in_dim=in_dim, **cfg.model_args)
    from mstar.models.heads import make_head
    from mstar.models.mil import MILModel
    from mstar.models.upstream import load_stage1_aggregator

    if cfg.model != "transmil":
        raise MstarError(f"--stage1 initialises a TransMIL; got --model {cfg.model}")
    aggregator = load_stage1_aggregator(cfg.stage1, in_dim=in_dim, proj=cfg.aggregator_proj, **cfg.model_args)
    return MILModel(aggregator, make_head(HEAD[cfg.task], aggregator.embed_dim, n_outputs))


def rebuild_args(cfg: TrainConfig, model) -> dict:
    """Constructor arguments that rebuild ``model.aggregator`` (geometry read from a stage-1 checkpoint)."""
    if not cfg.stage1:
        return dict(cfg.model_args)
    agg = model.aggregator
    heads = agg.layer1.attn.heads
    return {**cfg.model_args, "dim": agg.embed_dim, "heads": heads,
            "dim_head": agg.layer1.attn.to_qkv.out_features // (3 * heads),
            "input_proj": {"checkpoint": "linear", "fresh": "mlp", "none": "none"}[cfg.aggregator_proj]}


def slow_prefixes(cfg: TrainConfig) -> tuple[str, ...]:
    """Parameters trained at ``aggregator_lr``: the pretrained trunk (and the stage-1 projection if kept)."""
    if not cfg.stage1:
        return ()
    trunk = ("aggregator.cls_token", "aggregator.pos_layer", "aggregator.layer1", "aggregator.layer2",
             "aggregator.norm")
    return trunk + (("aggregator._fc1",) if cfg.aggregator_proj == "checkpoint" else ())


@torch.inference_mode()
def predict(model, objective, store, rows: pd.DataFrame, cfg: TrainConfig) -> pd.DataFrame:
    """Per-case outputs of ``model`` on ``rows`` joined with the truth columns."""
    model.eval()
    loader = _loader(store, rows, objective.targets(rows), cfg, train=False, seed=0)
    parts = []
    for batch in loader:
        b = as_batch(batch)
        out = model(b.x, b.mask, **b.inputs)
        parts.append(pd.DataFrame({"case": b.cases, **objective.outputs(out)}))
    out = pd.concat(parts, ignore_index=True)
    truth = pd.DataFrame({"case": rows["case"].to_numpy(), **objective.truth_columns(rows)})
    return truth.merge(out, on="case", how="left")


class SlideTask:
    """What :func:`train_task` needs to know about a task's inputs and model (the hooks a task with other
    per-case inputs overrides, e.g. :class:`mstar.tasks.multimodal.MultimodalTask`)."""

    # `precision: auto` may train in bf16-mixed on a CPU with native bf16 for these aggregators only:
    # checked (benchmarks/cpu_bf16_training.py: AUC and C-index within their CIs of fp32)
    cpu_bf16_models: tuple[str, ...] = ("abmil",)

    def cpu_bf16(self, cfg: TrainConfig) -> bool:
        """Whether ``precision: auto`` may choose bf16-mixed on the CPU for this run (see above)."""
        return cfg.model in self.cpu_bf16_models

    def load(self, cfg: TrainConfig):
        """``(manifest, table of kept cases, store, dropped case ids)``."""
        return _load_table(cfg)

    def objective(self, cfg: TrainConfig, table: pd.DataFrame):
        return make_objective(cfg.task, table, cfg.ordinal, cfg.n_bins, str(cfg.manifest))

    def for_unit(self, store, train: pd.DataFrame):
        """The store a unit trains on; anything estimated from data is fitted on ``train`` rows only."""
        return store

    def build_model(self, cfg: TrainConfig, n_outputs: int, store):
        return build_model(cfg, n_outputs, store.dim)

    def model_info(self, cfg: TrainConfig, model, store, objective) -> dict:
        """What ``model.pt`` records to rebuild the model."""
        return {"model": cfg.model, "head": HEAD[cfg.task], "n_outputs": objective.n_outputs,
                "in_dim": store.dim, "model_args": rebuild_args(cfg, model),
                "features": store_identity(store),
                "classes": getattr(objective, "classes", None),
                "bin_edges": None if getattr(objective, "edges", None) is None else objective.edges.tolist()}

    def finish(self, cfg: TrainConfig, run: Path, result: dict) -> None:
        """Write what the task adds to a finished run folder (nothing for slide-only tasks)."""


def train_unit(cfg: TrainConfig, unit: Unit, table: pd.DataFrame, store: BagStore, where: str,
               out_dir: Path, progress: bool, task: SlideTask | None = None) -> pd.DataFrame:
    """Train one unit; write its model, log, predictions and metrics; return its predictions."""
    task = task or SlideTask()
    objective = task.objective(cfg, table)
    rows = {s: table[unit.split == s] for s in ("train", "val", "test")}
    objective.fit(rows["train"], f"{where} ({unit.name})")
    for split, r in rows.items():
        if len(r) < 2 and (split != "val" or split in unit.selection):
            raise MstarError(f"{where}: unit {unit.name} has {len(r)} case(s) in '{split}'; too few to train "
                             "or evaluate (at least 2 needed)")
        if len(r):
            objective.check_split(r, split, f"{where} ({unit.name})")
    selection = table[unit.split.isin(unit.selection)]
    store = task.for_unit(store, rows["train"])
    L.seed_everything(unit.seed, workers=True, verbose=False)
    model = task.build_model(cfg, objective.n_outputs, store)
    truth = pd.DataFrame({"case": selection["case"].to_numpy(), **objective.truth_columns(selection)})
    module = SlideTaskModule(model, objective, cfg.lr, cfg.weight_decay, cfg.epochs, truth,
                             slow_prefixes=slow_prefixes(cfg), slow_lr=cfg.aggregator_lr)
    best = BestEpoch(f"val_{objective.selection_metric}", patience=cfg.patience, tie="loss")
    out_dir.mkdir(parents=True, exist_ok=True)
    fitted = fit(module, cfg, out_dir, callbacks=[best], progress=progress, cpu_bf16=task.cpu_bf16(cfg),
                 train_loader=_loader(store, rows["train"], objective.targets(rows["train"]), cfg, True,
                                      unit.seed),
                 val_loader=_loader(store, selection, objective.targets(selection), cfg, False, 0))
    if best.best_state is None:  # every validated epoch scored NaN
        raise MstarError(f"{where} ({unit.name}): no epoch had a finite validation "
                         f"{objective.selection_metric}; check the validation split's labels and the "
                         "features for NaN/inf")
    model.load_state_dict(best.best_state)
    best_epoch = best.best_epoch
    preds = []
    eval_splits = ["val", "test"] + (["val+test"] if unit.selection == ("val", "test") else [])
    for split in eval_splits:
        r = selection if split == "val+test" else rows[split]
        if len(r):
            p = predict(model, objective, store, r, cfg)
            p.insert(0, "split", split)
            preds.append(p)
    preds = pd.concat(preds, ignore_index=True)
    preds.insert(0, "unit", unit.name)
    metrics = {split: unit_metrics(objective.stats_fn(p), len(p), cfg.bootstrap, cfg.seed)
               for split, p in preds.groupby("split", sort=False)}
    info = {**task.model_info(cfg, model, store, objective), "best_epoch": best_epoch, "unit": unit.name}
    if isinstance(objective, SurvivalObjective):  # `mstar predict` splits new slides into risk groups by it
        info["risk_cutoff"] = float(predict(model, objective, store, rows["train"], cfg)["risk"].median())
    run_files.save_model(out_dir / "model.pt", model, info)
    write_predictions_csv(out_dir / "predictions.csv", preds)
    write_metrics_json(out_dir / "metrics.json", metrics, meta={"best_epoch": best_epoch})
    run_files.write_json(out_dir / "done.json", {"best_epoch": best_epoch, "precision": fitted.precision})
    return preds


def unit_precisions(run: Path, units) -> str:
    """The training precision of the run's units (``done.json``), e.g. ``bf16-mixed``; units trained in
    different precisions (a run resumed on another machine) are listed by unit, with a warning."""
    seen = {}
    for unit in units:
        done = run_files.unit_dir(run, unit.name) / "done.json"
        seen[unit.name] = json.loads(done.read_text()).get("precision", "unrecorded") if done.exists() else ""
    kinds = sorted(set(seen.values()) - {""})
    if len(kinds) <= 1:
        return kinds[0] if kinds else ""
    log.warning("%s: units were trained in different precisions: %s", run, seen)
    return ", ".join(f"{name}: {p}" for name, p in seen.items())


def store_identity(store) -> dict:
    """The encoder and tiling that made the features a run trains on (see
    :func:`mstar.data.feature_dirs.features_identity`); empty for stores without a features folder."""
    folder = getattr(store, "feature_dir", None)
    return {} if folder is None else folder_identity(folder)


def _load_table(cfg: TrainConfig):
    manifest = read_manifest(cfg.manifest)
    feature_dir = resolve_feature_dir(cfg.features)
    table = manifest.table
    store = BagStore(feature_dir, table["case"].tolist(), table["slides"].tolist(),
                     skip_missing=cfg.skip_missing, context=bool(getattr(cfg, "context", False)))
    empty = store.empty_cases()
    if empty and not cfg.skip_missing:
        raise MstarError(f"{feature_dir}: {len(empty)} case(s) have empty bags (no tissue tiles): "
                         f"{', '.join(empty[:10])}; pass --skip-missing to drop them")
    keep = set(store.cases) - set(empty)
    dropped = sorted(set(table["case"]) - keep)
    if dropped:
        log.warning("dropping %d case(s) without features: %s", len(dropped), ", ".join(dropped[:10]))
    return manifest, table[table["case"].isin(keep)].reset_index(drop=True), store, dropped


def train_task(cfg: TrainConfig, overwrite: bool = False, progress: bool = True,
               task: SlideTask | None = None) -> dict:
    """Train every unit of ``cfg`` (resuming finished ones) and write the run folder.

    ``task`` supplies the inputs and the model (default: slide bags + an aggregator and head). A finished
    run with the same settings and inputs is reported, not retrained (``result["finished_before"]``).
    """
    cfg.validate()
    task = task or SlideTask()
    start = time.perf_counter()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        return finished_result(folder.path)
    manifest, table, store, dropped = task.load(cfg)
    # a model that cannot be built (unknown name, --stage1 of another width) stops before the run folder
    # exists, so the corrected command is not refused as "other settings"
    task.build_model(cfg, task.objective(cfg, table).n_outputs, store)
    run = folder.start(cfg)
    units = make_units(manifest, cfg.protocol, cfg.runs, cfg.seed, cfg.val_fraction, cfg.train_fraction)
    for u in units:  # units index the manifest table; re-align to the kept rows
        u.split = u.split.loc[manifest.table["case"].isin(table["case"])].reset_index(drop=True)
    all_preds = []
    for unit in units:
        udir = run_files.unit_dir(run, unit.name)
        if run_files.is_done(udir):
            all_preds.append(read_predictions_csv(udir / "predictions.csv"))
            continue
        all_preds.append(train_unit(cfg, unit, table, store, str(manifest.path), udir, progress, task))
    result = finish_run(cfg, run, units, all_preds, dropped, time.perf_counter() - start,
                        objective=task.objective(cfg, table))
    task.finish(cfg, run, result)
    folder.finish(training_precision=unit_precisions(run, units))
    return result


def finished_result(run: Path) -> dict:
    """The result of a finished run folder (nothing is retrained)."""
    log.info("%s: already finished with these settings and inputs; pass --overwrite to train again", run)
    return {"run": str(run), "metrics": read_metrics_json(run / "metrics.json"),
            "meta": read_metrics_meta(run / "metrics.json"), "finished_before": True}


def finish_run(cfg: TrainConfig, run: Path, units, all_preds, dropped, seconds: float,
               objective=None) -> dict:
    """Aggregate unit results into ``metrics.json``, ``predictions.csv``, ``log.csv`` and figures."""
    from mstar.tasks.figures import write_figures

    if objective is None:
        objective = make_objective(cfg.task, read_manifest(cfg.manifest).table, cfg.ordinal, cfg.n_bins,
                                   str(cfg.manifest))
    preds = pd.concat(all_preds, ignore_index=True)
    metrics = {}
    for split, p in preds.groupby("split", sort=False):
        per_unit = [(objective.stats_fn(g), len(g), tuple(sorted(g["case"])))
                    for _, g in p.groupby("unit", sort=False)]
        if len(per_unit) == 1:
            metrics[split] = unit_metrics(per_unit[0][0], per_unit[0][1], cfg.bootstrap, cfg.seed)
        else:
            metrics[split] = mean_over_units(per_unit, cfg.bootstrap, cfg.seed)
    logs = []
    for u in units:
        path = run_files.unit_dir(run, u.name) / "log.csv"
        if path.exists():
            logs.append(pd.read_csv(path).assign(unit=u.name))
    write_log(run / "log.csv", pd.concat(logs, ignore_index=True).to_dict(orient="records"))
    write_predictions_csv(run / "predictions.csv", preds)
    meta = {"task": cfg.task, "protocol": cfg.protocol, "selection_metric": objective.selection_metric,
            "units": [u.name for u in units], "dropped_cases": dropped, "seconds": round(seconds, 1),
            "note": ("upstream protocol: epoch selected on val ∪ test; 'val+test' metrics are optimistic"
                     if cfg.protocol == "upstream" else "epoch selected on validation only; test untouched")}
    write_metrics_json(run / "metrics.json", metrics, meta=meta)
    write_figures(run, objective, preds)
    return {"run": str(run), "metrics": metrics, "meta": meta}
