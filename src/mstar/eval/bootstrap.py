"""Percentile bootstrap confidence intervals.

Every resample draws ``n`` row indices uniformly with replacement (``rng.integers(0, n, n)``). Resamples
are drawn in chunks from one ``numpy.random.default_rng(seed)`` stream, so the generic path
(:func:`bootstrap_ci`, which calls the metric on the resampled rows) and the vectorised path
(:func:`bootstrap_ci_weighted`, which sees each resample as a vector of per-row counts) see exactly the
same resamples for the same seed.

Undefined resamples (the metric returns NaN: a single class for AUC, no comparable pair for the
C-index) are **skipped and redrawn**: drawing continues until ``n_resamples`` defined values exist or
``max_draws_factor * n_resamples`` resamples have been drawn; the interval then uses the defined values
it has (a warning is logged when it had to stop short). The percentile interval is
``quantile(values, [alpha / 2, 1 - alpha / 2])`` (numpy's default linear interpolation). ``value`` is
always the metric on the full data, never the bootstrap mean.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CHUNK_RESAMPLES = 250
MAX_DRAWS_FACTOR = 10


def ci_dict(value: float, values: np.ndarray, n: int, alpha: float = 0.05) -> dict[str, Any]:
    """The ``metrics.json`` entry ``{value, ci_low, ci_high, n}`` from a value and its bootstrap values.

    Args:
        value: The metric on the full data (NaN when undefined).
        values: Defined bootstrap values (may be empty: the interval is then NaN).
        n: Number of rows (items) the metric was computed on.
        alpha: Two-sided level; the interval is the ``alpha/2`` and ``1-alpha/2`` percentiles.

    Returns:
        ``{"value": float, "ci_low": float, "ci_high": float, "n": int}``.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not math.isfinite(float(value)):
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(values, [alpha / 2, 1 - alpha / 2]))
    return {"value": float(value), "ci_low": low, "ci_high": high, "n": int(n)}


def _index_chunks(n: int, seed: int, chunk: int = CHUNK_RESAMPLES):
    """Endless stream of ``(chunk, n)`` index matrices from one seeded generator."""
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, n, size=(chunk, n))


def counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Per-row multiplicities of each resample: ``(B, n)`` int indices → ``(B, n)`` float64 counts."""
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _collect(
    stats_of_chunk: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    n: int,
    n_resamples: int,
    seed: int,
    required: set[str],
) -> dict[str, np.ndarray]:
    """Run chunks until each ``required`` statistic has ``n_resamples`` finite values (or the draw cap).

    Metrics undefined on the full data are not required (their interval is NaN anyway).
    """
    kept: dict[str, list[np.ndarray]] = {}
    have: dict[str, int] = {}
    drawn = 0
    for idx in _index_chunks(n, seed):
        stats = stats_of_chunk(idx)
        drawn += idx.shape[0]
        for name, vals in stats.items():
            vals = np.asarray(vals, dtype=float)
            good = vals[np.isfinite(vals)]
            kept.setdefault(name, []).append(good)
            have[name] = have.get(name, 0) + good.size
        enough = all(have[name] >= n_resamples for name in required if name in have)
        if enough or drawn >= MAX_DRAWS_FACTOR * n_resamples:
            break
    out = {}
    for name, parts in kept.items():
        vals = np.concatenate(parts)[:n_resamples]
        if vals.size < n_resamples and name in required:
            log.warning(
                "bootstrap of %s: only %d of %d resamples defined after %d draws", name, vals.size,
                n_resamples, drawn,
            )
        out[name] = vals
    return out


def bootstrap_ci_many(
    metrics_fn: Callable[..., Mapping[str, float]],
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Percentile bootstrap CIs of several metrics computed together from row-aligned arrays.

    Args:
        metrics_fn: ``metrics_fn(*arrays) -> {name: float}``, the same names on every call; NaN (or a
            raised ``ValueError``, which makes every metric NaN) marks an undefined resample.
        *arrays: Arrays sharing their first dimension (the rows that are resampled).
        n_resamples: Number of defined resamples to collect per metric.
        seed: Seed of ``numpy.random.default_rng``.
        alpha: Two-sided level (0.05 gives a 95 % interval).

    Returns:
        ``{name: {"value", "ci_low", "ci_high", "n"}}``; ``value`` is the metric on the full data.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap: arrays must share their first dimension")
    try:
        full = {k: float(v) for k, v in metrics_fn(*arrays).items()}
    except ValueError:
        raise ValueError("bootstrap: the metric raised ValueError on the full data") from None
    if n == 0:
        return {k: ci_dict(float("nan"), np.empty(0), 0, alpha) for k in full}

    def safe(*xs: np.ndarray) -> dict[str, float]:
        try:
            return {k: float(v) for k, v in metrics_fn(*xs).items()}
        except ValueError:
            return dict.fromkeys(full, float("nan"))

    def chunk_stats(idx: np.ndarray) -> dict[str, np.ndarray]:
        rows = [safe(*(a[row] for a in arrays)) for row in idx]
        return {k: np.array([r[k] for r in rows]) for k in full}

    boot = _collect(chunk_stats, n, n_resamples, seed, {k for k, v in full.items() if math.isfinite(v)})
    return {k: ci_dict(full[k], boot[k], n, alpha) for k in full}


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Percentile bootstrap CI of any metric of row-aligned arrays (resampling rows).

    Args:
        metric_fn: ``metric_fn(*arrays) -> float``; return NaN (or raise ``ValueError``) when undefined.
        *arrays: Arrays sharing their first dimension (the rows that are resampled).
        n_resamples: Number of defined resamples to collect.
        seed: Seed of ``numpy.random.default_rng``.
        alpha: Two-sided level (0.05 gives a 95 % interval).

    Returns:
        ``{"value", "ci_low", "ci_high", "n"}``; ``value`` is ``metric_fn`` on the full data (NaN if it
        raises ``ValueError`` there).
    """

    def as_dict(*xs: np.ndarray) -> dict[str, float]:
        try:
            return {"m": float(metric_fn(*xs))}
        except ValueError:
            return {"m": float("nan")}

    return bootstrap_ci_many(as_dict, *arrays, n_resamples=n_resamples, seed=seed, alpha=alpha)["m"]


def bootstrap_ci_weighted(
    stats_fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    n: int,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Vectorised percentile bootstrap of several metrics that accept per-row count weights.

    Args:
        stats_fn: ``stats_fn(W)`` with ``W`` a ``(B, n)`` float array of per-row multiplicities; returns
            ``{metric_name: (B,) values}`` (NaN where undefined). A metric computed with weights ``w``
            must equal the metric on the data with row ``i`` repeated ``w[i]`` times.
        n: Number of rows.
        n_resamples: Number of defined resamples to collect per metric.
        seed: Seed of ``numpy.random.default_rng`` (same resamples as :func:`bootstrap_ci`).
        alpha: Two-sided level.

    Returns:
        ``{metric_name: {"value", "ci_low", "ci_high", "n"}}``; values use ``W = ones``.
    """
    full = {k: float(np.asarray(v, dtype=float)[0]) for k, v in stats_fn(np.ones((1, n))).items()}
    if n == 0:
        return {k: ci_dict(float("nan"), np.empty(0), 0, alpha) for k in full}
    required = {k for k, v in full.items() if math.isfinite(v)}
    boot = _collect(lambda idx: stats_fn(counts_from_indices(idx, n)), n, n_resamples, seed, required)
    return {k: ci_dict(full[k], boot[k], n, alpha) for k in full}


def difference_stats(
    stats_a: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    stats_b: Callable[[np.ndarray], Mapping[str, np.ndarray]],
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The ``stats_fn`` of ``metric(A) - metric(B)`` on the same weights (metrics present in both)."""

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        a, b = stats_a(w), stats_b(w)
        return {k: np.asarray(a[k], dtype=float) - np.asarray(b[k], dtype=float) for k in a if k in b}  # (B,)

    return stats


def bootstrap_difference_weighted(
    stats_a: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    stats_b: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    n: int,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Paired percentile bootstrap of ``metric(A) - metric(B)``, both scored on the SAME resampled rows.

    Two models predicted on the same cases are correlated, so their separate intervals overlap even when
    one is reliably better; the interval of the difference is the test ("A beats B" when ``ci_low > 0``).

    Args:
        stats_a: ``stats_fn`` of model A (as for :func:`bootstrap_ci_weighted`).
        stats_b: ``stats_fn`` of model B over the same rows; metrics present in both are compared.
        n: Number of rows.
        n_resamples: Number of defined resamples to collect per metric.
        seed: Seed of ``numpy.random.default_rng``.
        alpha: Two-sided level.

    Returns:
        ``{metric_name: {"value", "ci_low", "ci_high", "n"}}`` of the differences A - B.
    """
    return bootstrap_ci_weighted(difference_stats(stats_a, stats_b), n, n_resamples, seed, alpha)


def weighted_mean_stats(per_item: Mapping[str, np.ndarray]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A ``stats_fn`` for metrics that are means of per-item scores (NaN items are ignored).

    Args:
        per_item: ``{metric_name: (n,) per-item scores}``.

    Returns:
        A function ``W -> {metric_name: (B,) weighted means}`` for :func:`bootstrap_ci_weighted`.
    """
    items = {k: np.asarray(v, dtype=float) for k, v in per_item.items()}

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, v in items.items():
            ok = np.isfinite(v)
            denom = w[:, ok].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k] = np.where(denom > 0, w[:, ok] @ v[ok] / np.maximum(denom, 1e-300), np.nan)
        return out

    return stats
