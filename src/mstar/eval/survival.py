"""Concordance index (sksurv-exact, vectorised for the bootstrap) and the MCAT-lineage time bins.

Harrell's C as computed by ``sksurv.metrics.concordance_index_censored(event, time, risk, tied_tol)``:
a pair (i, j) is comparable when i had the event and either ``time[j] > time[i]``, or
``time[j] == time[i]`` and j is censored. It counts 1 when ``risk[i] > risk[j]`` and 0.5 when
``|risk[i] - risk[j]| <= tied_tol``. Written as pair matrices, the C-index of a bootstrap resample
with per-row counts ``w`` is ``(w' S w) / (w' P w)`` (a row is never comparable with itself), which
makes 1000 resamples a handful of matrix products.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_weighted, bootstrap_difference_weighted

log = logging.getLogger(__name__)

PAIR_BLOCK_ELEMENTS = 4_000_000
CACHE_PAIRS_MAX_N = 2000  # keep the pair matrices in memory up to this many patients (2 x 32 MB)


def _check_survival(event: Any, time: Any, risk: Any | None = None) -> tuple[np.ndarray, ...]:
    event = np.asarray(event)
    if event.dtype != bool:
        if not np.isin(event, (0, 1)).all():
            raise MstarError("survival event indicator must be boolean or 0/1 (1 = event observed)")
        event = event.astype(bool)
    time = np.asarray(time, dtype=np.float64)
    arrays = [event, time] + ([] if risk is None else [np.asarray(risk, dtype=np.float64)])
    if any(a.ndim != 1 or len(a) != len(event) for a in arrays):
        raise MstarError("survival event, time and risk must be 1-D arrays of the same length")
    if not all(np.isfinite(a).all() for a in arrays[1:]):
        raise MstarError("survival times and risk scores must be finite (found NaN or inf)")
    return tuple(arrays)


def _pair_blocks(
    event: np.ndarray, time: np.ndarray, risk: np.ndarray, tied_tol: float
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(rows, P, S)``: comparable-pair indicator P and pair score S for a block of rows i."""
    n = len(time)
    block = max(1, PAIR_BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        t_i, e_i, r_i = time[rows, None], event[rows, None], risk[rows, None]
        comparable = e_i & ((time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :]))
        tie = np.abs(risk[None, :] - r_i) <= tied_tol  # (b, n)
        score = np.where(tie, 0.5, (risk[None, :] < r_i).astype(np.float64))  # (b, n)
        yield rows, comparable.astype(np.float64), np.where(comparable, score, 0.0)


def concordance_stats(
    event: Any, time: Any, risk: Any, tied_tol: float = 1e-8
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A ``stats_fn`` for :func:`~mstar.eval.bootstrap.bootstrap_ci_weighted` giving ``{"c_index": (B,)}``.

    Args:
        event: ``(N,)`` bool, True where the event (death) was observed.
        time: ``(N,)`` follow-up times.
        risk: ``(N,)`` risk scores (higher = earlier event expected).
        tied_tol: Risk differences up to this are ties (scored 0.5), as in sksurv.

    Returns:
        ``W (B, N) -> {"c_index": (B,)}``; NaN where a resample has no comparable pair.
    """
    event, time, risk = _check_survival(event, time, risk)
    blocks = list(_pair_blocks(event, time, risk, tied_tol)) if len(time) <= CACHE_PAIRS_MAX_N else None

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        num = np.zeros(w.shape[0])
        den = np.zeros(w.shape[0])
        for rows, p, s in blocks if blocks is not None else _pair_blocks(event, time, risk, tied_tol):
            num += (w[:, rows] * (w @ s.T)).sum(axis=1)
            den += (w[:, rows] * (w @ p.T)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"c_index": np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)}

    return stats


def concordance_index(event: Any, time: Any, risk: Any, tied_tol: float = 1e-8) -> float:
    """Harrell's C-index, equal to ``sksurv.metrics.concordance_index_censored(...)[0]``.

    Args:
        event: ``(N,)`` bool (or 0/1), True where the event was observed.
        time: ``(N,)`` follow-up times.
        risk: ``(N,)`` predicted risk (higher = shorter survival; for the MCAT head, ``-sum(S)``).
        tied_tol: Risk differences up to this count as ties.

    Returns:
        The C-index in [0, 1], or NaN (with a logged reason) when no pair is comparable
        (no events, or fewer than two patients) where sksurv would raise.
    """
    n = len(np.asarray(time))
    value = float(concordance_stats(event, time, risk, tied_tol)(np.ones((1, n)))["c_index"][0])
    if np.isnan(value):
        log.warning("C-index undefined: no comparable pair (%d patients, events observed: %d)",
                    len(np.asarray(time)), int(np.asarray(event, dtype=bool).sum()))
    return value


def concordance_index_ci(
    event: Any, time: Any, risk: Any, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
    tied_tol: float = 1e-8,
) -> dict[str, Any]:
    """C-index with a percentile bootstrap CI over patients (``{"value","ci_low","ci_high","n"}``).

    Args:
        event: ``(N,)`` bool, True where the event was observed.
        time: ``(N,)`` follow-up times.
        risk: ``(N,)`` predicted risk.
        n_resamples: Defined resamples to collect (undefined ones are redrawn).
        seed: Bootstrap seed.
        alpha: Two-sided level.
        tied_tol: Risk tie tolerance.

    Returns:
        The ``metrics.json`` entry for the C-index.
    """
    stats = concordance_stats(event, time, risk, tied_tol)
    return bootstrap_ci_weighted(stats, len(np.asarray(time)), n_resamples, seed, alpha)["c_index"]


def concordance_difference_ci(
    event: Any, time: Any, risk_a: Any, risk_b: Any, n_resamples: int = 1000, seed: int = 0,
    alpha: float = 0.05, tied_tol: float = 1e-8,
) -> dict[str, Any]:
    """Paired bootstrap CI of ``C(risk_a) - C(risk_b)``: both models scored on the SAME resampled patients.

    See :func:`~mstar.eval.bootstrap.bootstrap_difference_weighted` for why the paired interval is the test.

    Args:
        event: ``(N,)`` bool, True where the event was observed.
        time: ``(N,)`` follow-up times.
        risk_a: ``(N,)`` risk of model A.
        risk_b: ``(N,)`` risk of model B, row-aligned with ``risk_a``.
        n_resamples: Defined resamples to collect.
        seed: Bootstrap seed.
        alpha: Two-sided level.
        tied_tol: Risk tie tolerance.

    Returns:
        ``{"value", "ci_low", "ci_high", "n"}`` of the difference.
    """
    stats_a = concordance_stats(event, time, risk_a, tied_tol)
    stats_b = concordance_stats(event, time, risk_b, tied_tol)
    n = len(np.asarray(time))
    return bootstrap_difference_weighted(stats_a, stats_b, n, n_resamples, seed, alpha)["c_index"]


def discretize_survival(
    time: Any, event: Any, n_bins: int = 4, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Discrete-time labels of the MCAT lineage: bins at quantiles of the uncensored times.

    Inner edges are the ``1/n_bins, ..., (n_bins-1)/n_bins`` quantiles (linear interpolation, as
    ``pd.qcut``) of the times of patients whose event was observed; the outer edges are
    ``min(time) - eps`` and ``max(time) + eps`` over all patients given. Bins are right-open
    (``pd.cut(right=False)``): label ``k`` means ``edges[k] <= t < edges[k+1]``. Pass one row per
    patient, from the training split; apply the returned edges to other splits with
    :func:`apply_survival_bins`.

    Args:
        time: ``(N,)`` follow-up times (e.g. months).
        event: ``(N,)`` bool or 0/1, 1 = event observed (``Status``; censorship ``c = 1 - event``).
        n_bins: Number of bins.
        eps: Outward extension of the outer edges.

    Returns:
        ``(labels, edges)``: int64 ``(N,)`` bin indices and float64 ``(n_bins + 1,)`` edges.
    """
    event, time = _check_survival(event, time)
    uncensored = time[event]
    if uncensored.size == 0:
        raise MstarError("cannot make survival bins: no patient has an observed event (Status == 1)")
    edges = np.quantile(uncensored, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0] = time.min() - eps
    edges[-1] = time.max() + eps
    if np.any(np.diff(edges) <= 0):
        raise MstarError(
            f"survival bin edges are not distinct ({np.round(edges, 4).tolist()}): too few distinct "
            f"uncensored times for {n_bins} bins; use fewer bins"
        )
    return apply_survival_bins(time, edges), edges


def apply_survival_bins(time: Any, edges: Any) -> np.ndarray:
    """Bin labels for ``time`` with fixed right-open ``edges`` (e.g. computed on the training split).

    Times below the first or at/above the last edge fall into the first or last bin (a patient of
    another split may lie outside the training range).

    Args:
        time: ``(N,)`` follow-up times.
        edges: ``(n_bins + 1,)`` increasing bin edges.

    Returns:
        int64 ``(N,)`` labels in ``[0, n_bins)``.
    """
    edges = np.asarray(edges, dtype=np.float64)
    labels = np.searchsorted(edges, np.asarray(time, dtype=np.float64), side="right") - 1
    return np.clip(labels, 0, len(edges) - 2).astype(np.int64)
