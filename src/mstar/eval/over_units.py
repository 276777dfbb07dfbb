"""Metrics over several evaluation units (CV folds, repeated runs) with a bootstrap CI of their mean.

One unit: its metrics with percentile bootstrap CIs. Several units: ``value`` is the mean over units,
``sd`` their standard deviation, and the CI comes from resampling every unit's evaluation set at once
and averaging the unit metrics per resample (units evaluated on the same cases share resamples, so
repeated runs are paired). ``per_unit`` lists the point values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mstar.eval.bootstrap import bootstrap_ci_weighted, counts_from_indices

CHUNK = 100


def unit_metrics(stats_fn: Callable, n: int, n_resamples: int, seed: int) -> dict:
    """Every metric of one unit's evaluation set with its CI (``{metric: {value, ci_low, ci_high, n}}``)."""
    return bootstrap_ci_weighted(stats_fn, n, n_resamples=n_resamples, seed=seed)


def mean_over_units(units: list[tuple[Callable, int, tuple]], n_resamples: int, seed: int,
                    alpha: float = 0.05) -> dict:
    """Mean of each metric over units, with a resampling CI of the mean.

    Args:
        units: ``(stats_fn, n_rows, key)`` per unit; ``key`` is the unit's cases (a tuple): units with the
            same cases share draws, and ``n`` counts each case once.
    """
    full = [{k: float(np.asarray(v)[0]) for k, v in fn(np.ones((1, n))).items()} for fn, n, _ in units]
    names = [k for k in full[0] if all(k in f for f in full)]
    rng = np.random.default_rng(seed)
    keys = {}
    for _, n, key in units:
        keys.setdefault(key, n)
    draws: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for start in range(0, n_resamples, CHUNK):
        b = min(CHUNK, n_resamples - start)
        weights = {key: counts_from_indices(rng.integers(0, n, (b, n)), n) for key, n in keys.items()}
        per_unit = [fn(weights[key]) for fn, _, key in units]
        for k in names:
            stacked = np.stack([np.asarray(u[k], float) for u in per_unit])  # (units, b)
            draws[k].append(_nanmean(stacked) if np.isfinite(stacked).any() else stacked[0])
    out = {}
    for k in names:
        values = np.array([f[k] for f in full])
        boot = np.concatenate(draws[k])
        boot = boot[np.isfinite(boot)]
        lo, hi = (np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if len(boot) else (np.nan, np.nan))
        out[k] = {"value": float(_nanmean(values)), "ci_low": float(lo), "ci_high": float(hi),
                  "n": _distinct(keys),
                  "sd": _nansd(values) if len(values) > 1 else 0.0,
                  "per_unit": [float(v) for v in values]}
    return out


def _distinct(keys: dict) -> int:
    """How many cases the units evaluated, each once (repeated runs share theirs): the union of the keys,
    which are the units' cases."""
    return len(set().union(*map(set, keys)))


def _nanmean(a: np.ndarray) -> np.ndarray:
    """``np.nanmean(a, axis=0)`` without its "Mean of empty slice" warning: NaN where a column has no value
    (a unit whose resample lacks a class has an undefined AUC; every unit's can be)."""
    has = ~np.isnan(a)
    count = has.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(has, a, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)


def _nansd(values: np.ndarray) -> float:
    """Sample SD over the units with a value (NaN, without a warning, when fewer than two have one)."""
    valid = values[~np.isnan(values)]
    return float(np.std(valid, ddof=1)) if len(valid) > 1 else float("nan")
