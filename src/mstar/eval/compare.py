"""Is run A better than run B? Paired bootstrap of metric differences on the cases both runs predicted.

Two runs evaluated on the same cases (two encoders, a fusion model and its unimodal baseline) make
correlated errors, so their separate confidence intervals overlap even when one is reliably better. This
compares them the way a paper should: resample the common cases, score both runs on each resample, and
report the percentile interval of the difference (``mstar compare --run A --run B``).

Each run's ``predictions.csv`` is read for one split; units (CV folds, ``--runs`` repeats) are paired by
name and scored one by one, as ``metrics.json`` scores them. Survival runs are compared on the C-index,
classification runs on every metric of :mod:`mstar.eval.classification` (macro-AUC, balanced accuracy, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_difference_weighted, difference_stats
from mstar.eval.classification import classification_stats
from mstar.eval.over_units import mean_over_units
from mstar.eval.results import read_predictions_csv
from mstar.eval.survival import concordance_stats
from mstar.run.folder import record_field


def unit_predictions(run: str | os.PathLike, split: str = "test") -> dict[str, pd.DataFrame]:
    """``{unit: rows of split indexed by case (sorted)}`` from ``run``'s ``predictions.csv``.

    Raises:
        MstarError: When the run has no predictions or no rows for ``split``, or is neither survival
            (``time, event, risk``) nor classification (``y, prob_*``).
    """
    path = Path(run) / "predictions.csv"
    kind = str(record_field(run, "kind") or "")
    if kind and kind not in COMPARABLE:
        raise MstarError(f"{run}: a {kind} run; `mstar compare` compares classify, survival and "
                         "multimodal-survival runs and their evaluations (`mstar evaluate`)")
    if not path.is_file() and record_field(run, "status") == "running":
        raise MstarError(f"{run}: this run has not finished (run.json says running; it stopped or is still "
                         "training); re-run its command to finish it")
    preds = read_predictions_csv(path)
    if "split" not in preds.columns or "case" not in preds.columns:
        raise MstarError(f"{path}: needs 'split' and 'case' columns (a run directory of `mstar train`)")
    rows = preds[preds["split"] == split]
    if rows.empty:
        raise MstarError(f"{path}: no predictions for split '{split}'; "
                         f"it has {sorted(preds['split'].unique())}")
    if "risk" in rows.columns and {"time", "event"} <= set(rows.columns):
        keep = ["time", "event", "risk"]
    elif "y" in rows.columns and any(c.startswith("prob_") for c in rows.columns):
        keep = ["y", *(c for c in rows.columns if c.startswith("prob_"))]
    else:
        raise MstarError(f"{path}: neither a survival run (time, event, risk) nor a classification run "
                         "(y, prob_<class>)")
    units = rows["unit"] if "unit" in rows.columns else pd.Series("all", index=rows.index)
    return {str(u): g.set_index("case")[keep].sort_index() for u, g in rows.groupby(units, sort=False)}


COMPARABLE = ("classify", "survival", "multimodal-survival", "evaluation")  # run.json kinds


def _task(units: dict[str, pd.DataFrame]) -> str:
    return "survival" if "risk" in next(iter(units.values())).columns else "classification"


def _stats_fn(rows: pd.DataFrame) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    if "risk" in rows.columns:
        return concordance_stats(rows["event"].to_numpy(bool), rows["time"].to_numpy(float),
                                 rows["risk"].to_numpy(float))
    prob_cols = [c for c in rows.columns if c.startswith("prob_")]
    return classification_stats(rows["y"].to_numpy(int), rows[prob_cols].to_numpy(float),
                                [c.removeprefix("prob_") for c in prob_cols])


def _point(stats_fn: Callable, n: int) -> dict[str, float]:
    return {k: float(np.asarray(v)[0]) for k, v in stats_fn(np.ones((1, n))).items()}


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, split: str = "test",
                 n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Paired bootstrap of ``metric(A) - metric(B)`` on the cases both runs predicted in ``split``.

    Units (CV folds, repeats) are paired by name and each unit is scored on its own, as ``metrics.json``
    does: the difference is the mean over units of ``metric(A_u) - metric(B_u)``, and each resample
    redraws every unit's cases (units on the same cases share draws). Pooling out-of-fold risks of
    different fold models instead would mix their risk scales.

    Args:
        run_a: Run directory of model A (``runs/<task>/<name>``).
        run_b: Run directory of model B, same task, cohort and units.
        split: Which split's predictions to compare (``test``; ``val``; ``val+test`` for upstream runs).
        n_resamples: Bootstrap resamples of cases.
        seed: Bootstrap seed.
        alpha: Two-sided level.

    Returns:
        ``{"task", "split", "n", "units", "only_a", "only_b", "metrics": {name: {"a", "b", "difference":
        {value, ci_low, ci_high, n[, sd, per_unit]}}}}``; ``a``/``b`` are means over units.

    Raises:
        MstarError: Different tasks, classes or units, no common case, or truths that disagree.
    """
    ua, ub = unit_predictions(run_a, split), unit_predictions(run_b, split)
    if _task(ua) != _task(ub):
        raise MstarError(f"{run_a} is a {_task(ua)} run and {run_b} a {_task(ub)} run; compare two runs of "
                         "the same task on one cohort")
    if set(ua) != set(ub):
        if len(ua) != 1 or len(ub) != 1:
            raise MstarError(f"{run_a} and {run_b} have different units ({sorted(ua)} vs {sorted(ub)}); "
                             "compare runs made with the same folds and --runs")
        ub = {next(iter(ua)): next(iter(ub.values()))}
    units, points_a, points_b, only_a, only_b = [], [], [], set(), set()
    for name, a in ua.items():
        b = ub[name]
        if list(a.columns) != list(b.columns):
            raise MstarError(f"{run_a} and {run_b} are not the same task/classes: columns {list(a.columns)} "
                             f"vs {list(b.columns)}")
        common = a.index.intersection(b.index)
        if common.empty:
            raise MstarError(f"{run_a} and {run_b} share no case in split '{split}' (unit {name}); compare "
                             "runs on one cohort")
        only_a |= set(a.index) - set(common)  # cases, not unit x case pairs: repeated runs share them
        only_b |= set(b.index) - set(common)
        a, b = a.loc[common], b.loc[common]
        truth = ["time", "event"] if "risk" in a.columns else ["y"]
        if not a[truth].equals(b[truth]):
            raise MstarError(f"{run_a} and {run_b} disagree on the truth ({', '.join(truth)}) of common "
                             "cases; were they trained on different manifests?")
        stats_a, stats_b = _stats_fn(a), _stats_fn(b)
        points_a.append(_point(stats_a, len(common)))
        points_b.append(_point(stats_b, len(common)))
        units.append((stats_a, stats_b, len(common), tuple(common)))
    if len(units) == 1:
        stats_a, stats_b, n, _ = units[0]
        diffs = bootstrap_difference_weighted(stats_a, stats_b, n, n_resamples, seed, alpha)
    else:
        diffs = mean_over_units([(difference_stats(sa, sb), n, key) for sa, sb, n, key in units], n_resamples,
                                seed, alpha)
    metrics = {k: {"a": float(np.nanmean([p[k] for p in points_a])),
                   "b": float(np.nanmean([p[k] for p in points_b])), "difference": diffs[k]} for k in diffs}
    return {"task": _task(ua), "split": split, "n": len({c for u in units for c in u[3]}), "units": list(ua),
            "only_a": len(only_a), "only_b": len(only_b), "metrics": metrics}
