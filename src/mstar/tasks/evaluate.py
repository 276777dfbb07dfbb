"""`mstar evaluate`: apply a finished run's models to another cohort (external validation).

Every row of the manifest is a test case. Each unit's model predicts it; metrics (with bootstrap CIs)
are computed per unit and, for several units, as their mean with a CI of the mean, exactly as in
training. Outputs go to ``<run>/evaluations/<name>/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from mstar.data.bags import BagStore
from mstar.data.feature_dirs import check_same_encoder, folder_identity, resolve_feature_dir
from mstar.data.manifest import read_manifest
from mstar.errors import MstarError
from mstar.eval.over_units import mean_over_units, unit_metrics
from mstar.eval.results import read_metrics_json, read_metrics_meta, write_metrics_json, write_predictions_csv
from mstar.run.config import RunConfig
from mstar.run.folder import open_run
from mstar.tasks import run_files
from mstar.tasks.config import TASKS, TrainConfig
from mstar.tasks.figures import write_figures
from mstar.tasks.objectives import ClassificationObjective, SurvivalObjective
from mstar.tasks.runner import predict

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig(RunConfig):
    """Settings of ``mstar evaluate``: a finished run applied to another cohort."""

    run: str = ""                      # the trained run folder (runs/<task>/<name>)
    manifest: str = ""                 # the cohort; every row is a test case
    features: str = ""                 # its features (the encoder the run was trained on)
    skip_missing: bool = False
    name: str | None = None            # evaluation name (default: the manifest's stem)

    KIND: ClassVar[str] = "evaluation"
    REQUIRED: ClassVar[tuple[str, ...]] = ("run", "manifest", "features")
    INPUTS: ClassVar[tuple[str, ...]] = ("run", "manifest", "features")

    def run_dir(self) -> Path:
        """``<run>/evaluations/<name>``: the evaluation lives with the run it evaluates."""
        return Path(self.run) / "evaluations" / (self.name or Path(self.manifest).stem)

    def input_paths(self) -> dict[str, Any]:
        from mstar.data.feature_dirs import feature_files_for

        slides = [s for ss in read_manifest(self.manifest, require_split=False).table["slides"] for s in ss]
        units = sorted(Path(self.run).glob("units/*/model.pt"))
        return {"models": units, "manifest": self.manifest,
                "features": feature_files_for(self.features, slides)}


def _training_cases(settings: TrainConfig, feature_dir: Path) -> set[str]:
    """The cases any unit of a run trained or validated on (not ``test`` in its split), from the run's
    manifest, when ``feature_dir`` is the run's own features folder (another cohort may reuse case ids);
    empty when that manifest is gone or has no split."""
    try:
        if resolve_feature_dir(settings.features).resolve() != feature_dir.resolve():
            return set()
        manifest = read_manifest(settings.manifest, require_split=False)
    except (MstarError, OSError):
        return set()
    if not manifest.has_split:
        return set()
    cases = manifest.table["case"].astype(str)
    return {c for unit in manifest.split_names() for c in cases[manifest.split_of(unit) != "test"]}


def evaluate_run(cfg: EvaluateConfig, overwrite: bool = False) -> dict:
    """Predict ``cfg.manifest`` with every finished unit of ``cfg.run``; write metrics, predictions,
    figures."""
    cfg.validate()
    run = run_files.find_run(cfg.run)
    task = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("task")
    if task not in TASKS:
        raise MstarError(f"{run}: a {task or run.parent.name} run; `mstar evaluate` applies classify and "
                         "survival runs (train one with `mstar train classify|survival`)")
    settings = TrainConfig.load(run / "config.yaml")
    manifest, features, skip_missing = cfg.manifest, cfg.features, cfg.skip_missing
    folder = open_run(cfg, overwrite)
    if folder.finished:
        out = folder.path
        return {"out": str(out), "metrics": read_metrics_json(out / "metrics.json"),
                "selection_metric": read_metrics_meta(out / "metrics.json")["selection_metric"],
                "finished_before": True}
    units = (sorted(p for p in (run / "units").iterdir() if run_files.is_done(p)) if (run / "units").exists()
             else [])
    if not units:
        raise MstarError(f"{run}: no finished unit to evaluate")
    table = read_manifest(manifest, require_split=False).table
    needed = ["label"] if task == "classify" else ["time", "event"]
    if any(c not in table for c in needed):
        kind = "labelled (a label column)" if task == "classify" else "survival (time and event columns)"
        raise MstarError(f"{manifest}: the run is a {task} run and needs a {kind} manifest; this one has "
                         f"{', '.join(c for c in table.columns if c not in ('slides',))}")
    feature_dir = resolve_feature_dir(features)
    store = BagStore(feature_dir, table["case"].tolist(), table["slides"].tolist(),
                     skip_missing=skip_missing, context=bool(settings.context))
    table = table[table["case"].isin(store.cases)].reset_index(drop=True)
    seen = sorted(set(table["case"]) & _training_cases(settings, feature_dir))
    if seen:
        log.warning("%s: %d of the %d cases were in the run's training or validation split (e.g. %s); these "
                    "figures are not an external validation", manifest, len(seen), len(table),
                    ", ".join(seen[:3]))
    identity = folder_identity(feature_dir)  # the encoder of the cohort's features, read once
    preds, per_unit = [], []
    for udir in units:
        model, info = run_files.load_model(udir / "model.pt")
        check_same_encoder(features, identity, info.get("features") or {},
                           "extract the cohort with the run's encoder")
        if info["in_dim"] != store.dim:
            raise MstarError(f"{features}: {store.dim}-d features, but the run was trained on "
                             f"{info['in_dim']}-d; extract with the same encoder")
        if info["head"] == "classification":
            objective = ClassificationObjective(info["classes"], settings.ordinal or False)
            unknown = sorted(set(table["label"]) - set(info["classes"]))
            if unknown:
                raise MstarError(f"{manifest}: labels {unknown} were not seen in training "
                                 f"({info['classes']})")
        else:
            objective = SurvivalObjective(info["n_outputs"])
            objective.edges = np.asarray(info["bin_edges"])
        p = predict(model, objective, store, table, settings)
        p.insert(0, "split", "test")
        p.insert(0, "unit", udir.name)
        preds.append(p)
        per_unit.append((objective.stats_fn(p), len(p), tuple(sorted(p["case"]))))
    out = folder.start(cfg)
    all_preds = pd.concat(preds, ignore_index=True)
    boot, seed = settings.bootstrap, settings.seed
    metrics = {"test": (unit_metrics(per_unit[0][0], per_unit[0][1], boot, seed) if len(per_unit) == 1
                        else mean_over_units(per_unit, boot, seed))}
    write_predictions_csv(out / "predictions.csv", all_preds)
    write_metrics_json(out / "metrics.json", metrics, meta={"run": str(run), "manifest": str(manifest),
                                                              "units": [u.name for u in units],
                                                              "cases_seen_in_training": len(seen),
                                                              "selection_metric": objective.selection_metric})
    write_figures(out, objective, all_preds)
    folder.finish()
    return {"out": str(out), "metrics": metrics, "selection_metric": objective.selection_metric}
