"""`mstar evaluate`: apply a finished run's models to another cohort (external validation).

Every row of the manifest is a test case. Each unit's model predicts it; metrics (with bootstrap CIs)
are computed per unit and, for several units, as their mean with a CI of the mean, exactly as in
training. Outputs go to ``<run>/evaluations/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mstar.data.bags import BagStore
from mstar.data.feature_dirs import resolve_feature_dir
from mstar.data.manifest import read_manifest
from mstar.errors import MstarError
from mstar.eval.results import write_metrics_json, write_predictions_csv
from mstar.tasks import run_files
from mstar.tasks.aggregate import mean_over_units, unit_metrics
from mstar.tasks.config import TASKS, TrainConfig
from mstar.tasks.figures import write_figures
from mstar.tasks.objectives import ClassificationObjective, SurvivalObjective


def evaluate_run(run: str | Path, manifest: str | Path, features: str | Path, name: str | None = None,
                 skip_missing: bool = False) -> dict:
    """Predict ``manifest`` with every finished unit of ``run``; write metrics, predictions and figures."""
    run = run_files.find_run(run)
    settings = yaml.safe_load((run / "config.yaml").read_text())
    if settings.get("task") not in TASKS:
        raise MstarError(f"{run}: `mstar evaluate` applies classify/survival runs; this is a "
                         f"{settings.get('task')} run")
    cfg = TrainConfig(**settings)
    table = read_manifest(manifest).table
    units = sorted(p for p in (run / "units").iterdir() if run_files.is_done(p)) if (run / "units").exists() else []
    if not units:
        raise MstarError(f"{run}: no finished unit to evaluate")
    store = BagStore(resolve_feature_dir(features), table["case"].tolist(), table["slides"].tolist(),
                     skip_missing=skip_missing)
    table = table[table["case"].isin(store.cases)].reset_index(drop=True)
    from mstar.tasks.runner import predict

    preds, per_unit = [], []
    for udir in units:
        model, info = run_files.load_model(udir / "model.pt")
        if info["in_dim"] != store.dim:
            raise MstarError(f"{features}: {store.dim}-d features, but the run was trained on {info['in_dim']}-d; "
                             "extract with the same encoder")
        if info["head"] == "classification":
            objective = ClassificationObjective(info["classes"], cfg.ordinal or False)
            unknown = sorted(set(table["label"]) - set(info["classes"]))
            if unknown:
                raise MstarError(f"{manifest}: labels {unknown} were not seen in training ({info['classes']})")
        else:
            objective = SurvivalObjective(info["n_outputs"])
            objective.edges = np.asarray(info["bin_edges"])
        p = predict(model, objective, store, table, cfg)
        p.insert(0, "split", "test")
        p.insert(0, "unit", udir.name)
        preds.append(p)
        per_unit.append((objective.stats_fn(p), len(p), tuple(sorted(p["case"]))))
    name = name or Path(manifest).stem
    out = run / "evaluations" / name
    all_preds = pd.concat(preds, ignore_index=True)
    metrics = {"test": (unit_metrics(per_unit[0][0], per_unit[0][1], cfg.bootstrap, cfg.seed) if len(per_unit) == 1
                        else mean_over_units(per_unit, cfg.bootstrap, cfg.seed))}
    write_predictions_csv(out / "predictions.csv", all_preds)
    write_metrics_json(out / "metrics.json", metrics, meta={"run": str(run), "manifest": str(manifest),
                                                              "units": [u.name for u in units]})
    write_figures(out, objective, all_preds)
    return {"out": str(out), "metrics": metrics, "selection_metric": objective.selection_metric}
