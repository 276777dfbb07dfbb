"""Is run A better than run B? Paired bootstrap of metric differences on the cases both runs predicted.

Two runs evaluated on the same cases (two encoders, a fusion model and its unimodal baseline) make
correlated errors, so their separate confidence intervals overlap even when one is reliably better. This
compares them the way a paper should: resample the common cases, score both runs on each resample, and
report the percentile interval of the difference (``mstar compare --run A --run B``).

Each run's ``predictions.csv`` is read for one split. A case predicted by several units (``--runs R``
repeats) gets the mean of its scores over units; with k-fold CV each case is predicted once (pooled
out-of-fold). Survival runs are compared on the C-index, classification runs on every metric of
:mod:`mstar.eval.classification` (macro-AUC, balanced accuracy, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_difference_weighted
from mstar.eval.classification import classification_stats
from mstar.eval.results import read_predictions_csv
from mstar.eval.survival import concordance_stats


def case_predictions(run: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """One row per case of ``run``'s ``split``: truth columns and scores averaged over units.

    Raises:
        MstarError: When the run has no predictions or no rows for ``split``, or is neither survival
            (``risk``) nor classification (``prob_*``).
    """
    path = Path(run) / "predictions.csv"
    preds = read_predictions_csv(path)
    if "split" not in preds.columns or "case" not in preds.columns:
        raise MstarError(f"{path}: needs 'split' and 'case' columns (a run directory of `mstar train`)")
    rows = preds[preds["split"] == split]
    if rows.empty:
        raise MstarError(f"{path}: no predictions for split '{split}'; it has {sorted(preds['split'].unique())}")
    if "risk" in rows.columns and {"time", "event"} <= set(rows.columns):
        truth, scores = ["time", "event"], ["risk"]
    elif "y" in rows.columns and any(c.startswith("prob_") for c in rows.columns):
        truth, scores = ["y"], [c for c in rows.columns if c.startswith("prob_")]
    else:
        raise MstarError(f"{path}: neither a survival run (time, event, risk) nor a classification run "
                         "(y, prob_<class>)")
    return rows.groupby("case", sort=True).agg({**dict.fromkeys(truth, "first"), **dict.fromkeys(scores, "mean")})


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, split: str = "test",
                 n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Paired bootstrap of ``metric(A) - metric(B)`` on the cases both runs predicted in ``split``.

    Args:
        run_a: Run directory of model A (``runs/<task>/<name>``).
        run_b: Run directory of model B, same task and truth.
        split: Which split's predictions to compare (``test``; ``val``; ``val+test`` for upstream runs).
        n_resamples: Bootstrap resamples of cases.
        seed: Bootstrap seed.
        alpha: Two-sided level.

    Returns:
        ``{"task", "n", "only_a", "only_b", "metrics": {name: {"a", "b", "difference": {value, ci_low,
        ci_high, n}}}}``.

    Raises:
        MstarError: Different tasks or classes, no common case, or truths that disagree.
    """
    a, b = case_predictions(run_a, split), case_predictions(run_b, split)
    if list(a.columns) != list(b.columns):
        raise MstarError(f"{run_a} and {run_b} are not the same task/classes: columns {list(a.columns)} vs "
                         f"{list(b.columns)}")
    common = a.index.intersection(b.index)
    if common.empty:
        raise MstarError(f"{run_a} and {run_b} share no case in split '{split}'; compare runs on one cohort")
    only_a, only_b = len(a) - len(common), len(b) - len(common)
    a, b = a.loc[common], b.loc[common]
    survival = "risk" in a.columns
    truth = ["time", "event"] if survival else ["y"]
    if not a[truth].equals(b[truth]):
        raise MstarError(f"{run_a} and {run_b} disagree on the truth ({', '.join(truth)}) of common cases; "
                         "were they trained on different manifests?")
    if survival:
        event, time = a["event"].to_numpy(bool), a["time"].to_numpy(float)
        stats_a = concordance_stats(event, time, a["risk"].to_numpy(float))
        stats_b = concordance_stats(event, time, b["risk"].to_numpy(float))
    else:
        prob_cols = [c for c in a.columns if c.startswith("prob_")]
        classes = [c.removeprefix("prob_") for c in prob_cols]
        y = a["y"].to_numpy(int)
        stats_a = classification_stats(y, a[prob_cols].to_numpy(float), classes)
        stats_b = classification_stats(y, b[prob_cols].to_numpy(float), classes)
    n = len(common)
    ones = np.ones((1, n))
    point_a = {k: float(v[0]) for k, v in stats_a(ones).items()}
    point_b = {k: float(v[0]) for k, v in stats_b(ones).items()}
    diffs = bootstrap_difference_weighted(stats_a, stats_b, n, n_resamples, seed, alpha)
    metrics = {k: {"a": point_a[k], "b": point_b[k], "difference": diffs[k]} for k in diffs}
    return {"task": "survival" if survival else "classification", "split": split, "n": n,
            "only_a": only_a, "only_b": only_b, "metrics": metrics}
