"""Metrics of discrete-time survival curves: time-dependent AUC and integrated Brier score (sksurv).

The MCAT-lineage head predicts, per patient, ``S[k] = P(T >= edges[k+1])`` for each of the ``K`` time
bins (``S = cumprod(1 - hazards)``). Survival is therefore known exactly at the bin ends; between them
we use the step function that drops at each bin end: ``S(t) = 1`` before the first bin end and
``S(t) = S[k]`` from ``edges[k+1]`` until the next end. The default evaluation times are the interior
bin edges (where no step convention is needed), kept where sksurv can evaluate them: inside the
test follow-up ``[min, max)`` of the test times.

Both metrics weight by the inverse probability of censoring estimated on the **training** split
(``sksurv.metrics.cumulative_dynamic_auc`` and ``integrated_brier_score``). sksurv refuses test times
beyond the last training time; such times are truncated to just below it. This leaves both metrics
unchanged: evaluation times lie below the truncation point, and a truncated patient still counts as
"event-free at every evaluation time", the only thing its time is used for (pinned by a test). When
sksurv cannot evaluate (too few valid times, no events) the metric is NaN and the reason is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_many
from mstar.eval.results import point_entry

log = logging.getLogger(__name__)


def risk_from_survival(surv: Any) -> np.ndarray:
    """Risk score of the MCAT head, ``-sum_k S[k]`` (higher = shorter survival): ``(N, K) -> (N,)``."""
    return -np.asarray(surv, dtype=np.float64).sum(axis=1)


def survival_at_times(surv: Any, bin_edges: Any, times: Any) -> np.ndarray:
    """Evaluate discrete survival curves at arbitrary times (step function dropping at bin ends).

    Args:
        surv: ``(N, K)`` survival after each bin (``cumprod(1 - hazards)``).
        bin_edges: ``(K + 1,)`` bin edges (from :func:`mstar.eval.survival.discretize_survival`).
        times: ``(T,)`` evaluation times.

    Returns:
        ``(N, T)`` survival probabilities.
    """
    surv = np.asarray(surv, dtype=np.float64)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if surv.ndim != 2 or len(edges) != surv.shape[1] + 1:
        raise MstarError(
            f"survival curves {surv.shape} need {surv.shape[-1] + 1} bin edges, got {len(edges)}"
        )
    n_done = np.searchsorted(edges[1:], np.asarray(times, dtype=np.float64), side="right")  # (T,)
    padded = np.concatenate([np.ones((len(surv), 1)), surv], axis=1)  # (N, K + 1)
    return padded[:, np.minimum(n_done, surv.shape[1])]


def _structured(event: np.ndarray, time: np.ndarray):
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event, dtype=bool), time=np.asarray(time, dtype=np.float64))


def _valid_times(times: np.ndarray, time_test: np.ndarray) -> np.ndarray:
    times = np.unique(np.asarray(times, dtype=np.float64))
    if len(time_test) == 0:
        return times[:0]
    return times[(times >= time_test.min()) & (times < time_test.max())]


def _truncate(time: np.ndarray, time_train: Any) -> np.ndarray:
    """Test times beyond the training follow-up, moved to just below its last time (see module doc)."""
    last = float(np.max(np.asarray(time_train, dtype=np.float64)))
    return np.where(time > last, np.nextafter(last, -np.inf), time)


def _compute(surv, edges, event, time, y_train, valid, warn) -> dict[str, float]:
    """Both metrics at fixed ``valid`` times; ``warn(msg, *args)`` reports why one is undefined."""
    from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score

    time = _truncate(time, y_train["time"])
    out = {"td_auc_mean": float("nan"), "ibs": float("nan")}
    if len(valid) == 0 or valid.min() < time.min() or valid.max() >= time.max():
        warn("time-dependent metrics undefined: no evaluation time inside the test follow-up")
        return out
    y_test = _structured(event, time)
    s_t = survival_at_times(surv, edges, valid)  # (N, T)
    try:
        out["td_auc_mean"] = float(cumulative_dynamic_auc(y_train, y_test, 1.0 - s_t, valid)[1])
    except ValueError as err:
        warn("time-dependent AUC undefined: %s", err)
    if len(valid) < 2:
        warn("integrated Brier score undefined: fewer than two evaluation times in the follow-up")
        return out
    try:
        out["ibs"] = float(integrated_brier_score(y_train, y_test, s_t, valid))
    except ValueError as err:
        warn("integrated Brier score undefined: %s", err)
    return out


def time_dependent_metrics(
    surv: Any, bin_edges: Any, event: Any, time: Any, event_train: Any, time_train: Any,
    times: Any | None = None,
) -> dict[str, float]:
    """Mean cumulative/dynamic AUC and integrated Brier score of discrete survival curves.

    Args:
        surv: ``(N, K)`` predicted survival after each bin, for the evaluated (test) patients.
        bin_edges: ``(K + 1,)`` bin edges used by the model.
        event: ``(N,)`` bool, event observed, evaluated patients.
        time: ``(N,)`` follow-up times, evaluated patients.
        event_train: Training-split events (censoring distribution for IPCW).
        time_train: Training-split times.
        times: Evaluation times; default the interior bin edges. Times outside the test follow-up
            ``[min, max)`` are dropped.

    Returns:
        ``{"td_auc_mean": float, "ibs": float}``; NaN (reason logged) where sksurv cannot evaluate.
        ``td_auc_mean`` is sksurv's ``mean_auc`` (weighted by the KM survival drop between times);
        ``ibs`` needs at least two valid times.
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    wanted = edges[1:-1] if times is None else np.asarray(times, dtype=np.float64)
    valid = _valid_times(wanted, _truncate(time, time_train))
    y_train = _structured(event_train, time_train)
    return _compute(surv, edges, np.asarray(event, dtype=bool), time, y_train, valid, log.warning)


def time_dependent_metrics_ci(
    surv: Any, bin_edges: Any, event: Any, time: Any, event_train: Any, time_train: Any,
    times: Any | None = None, n_resamples: int = 200, seed: int = 0, alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """:func:`time_dependent_metrics` with percentile bootstrap CIs over the evaluated patients.

    The evaluation times are fixed from the full test set; resamples whose follow-up no longer covers
    them, or where sksurv cannot evaluate, are redrawn. The training split (censoring distribution) is
    not resampled. ``n_resamples`` defaults to 200 because each resample calls sksurv (a few ms each
    for a few hundred patients).

    Returns:
        ``{"td_auc_mean": {...}, "ibs": {...}}`` in the ``metrics.json`` form.
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    wanted = edges[1:-1] if times is None else np.asarray(times, dtype=np.float64)
    valid = _valid_times(wanted, _truncate(time, time_train))
    y_train = _structured(event_train, time_train)
    surv = np.asarray(surv, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    full = _compute(surv, edges, event, time, y_train, valid, log.warning)

    def quiet(*_: Any) -> None:
        return None

    def metrics(s: np.ndarray, e: np.ndarray, t: np.ndarray) -> dict[str, float]:
        return _compute(s, edges, e, t, y_train, valid, quiet)

    if all(np.isnan(v) for v in full.values()):
        return {k: point_entry(v, len(time)) for k, v in full.items()}
    return bootstrap_ci_many(metrics, surv, event, time, n_resamples=n_resamples, seed=seed, alpha=alpha)
