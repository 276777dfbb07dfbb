"""Slide classification metrics (diagnosis, molecular, zero-/few-shot) with bootstrap CIs.

All metrics are written against per-row count weights ``W (B, N)`` so that 1000 bootstrap resamples
are computed at once (a resample is a weight vector of multiplicities; ``W = ones`` is the data itself).
The definitions match scikit-learn (pinned by tests):

- ``auc_macro`` / ``auc_weighted``: one-vs-rest ROC-AUC, unweighted / prevalence-weighted mean over
  classes (``roc_auc_score(y, probs, multi_class="ovr", average=...)``); binary: AUC of P(class 1).
  Ties in a score count 1/2 (Mann-Whitney). Undefined (NaN) when a class has no positive or no
  negative row.
- ``balanced_accuracy``: mean recall over classes present in ``y_true`` (``balanced_accuracy_score``).
- ``f1_weighted``: per-class F1 weighted by true support (``f1_score(average="weighted")``).
- ``accuracy``; ``kappa_quadratic`` (ordinal only): ``cohen_kappa_score(weights="quadratic",
  labels=range(C))``, i.e. distances are class-index differences even for classes never seen.
- ``auc[<class>]``: per-class one-vs-rest AUC (multiclass only).

Predictions are ``argmax(probs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_weighted


def _check(y_true: Any, probs: Any, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    c = len(class_names)
    if p.ndim == 1 and c == 2:
        p = np.stack([1.0 - p, p], axis=1)
    if c < 2 or p.ndim != 2 or p.shape != (len(y), c):
        raise MstarError(
            f"classification metrics need probs of shape (N, {c}) for {c} class names, got {p.shape}"
        )
    if not np.isfinite(p).all():
        raise MstarError("classification probabilities contain NaN or inf")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= c):
        raise MstarError(f"labels must be integers in [0, {c}) (indices into the class names)")
    return y.astype(np.int64), p


def weighted_auc(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Binary ROC-AUC of ``score`` for ``positive`` rows under per-row count weights.

    Args:
        score: ``(N,)`` scores (higher = more likely positive).
        positive: ``(N,)`` bool.
        w: ``(B, N)`` non-negative weights.

    Returns:
        ``(B,)`` AUCs (ties count 1/2); NaN where a resample lacks positives or negatives.
    """
    order = np.argsort(score, kind="stable")
    s, pos, ws = score[order], positive[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, dtype=int)
    if len(starts) == 0:
        return np.full(w.shape[0], np.nan)
    wp = np.add.reduceat(ws * pos, starts, axis=1)  # (B, G) positive weight per distinct score
    wn = np.add.reduceat(ws * ~pos, starts, axis=1)  # (B, G)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    denom = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


def classification_stats(
    y_true: Any, probs: Any, class_names: Sequence[str], ordinal: bool = False
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A ``stats_fn`` (``W (B, N) -> {metric: (B,)}``) for :func:`bootstrap_ci_weighted`.

    Args:
        y_true: ``(N,)`` integer labels in ``[0, C)``.
        probs: ``(N, C)`` class probabilities (or ``(N,)`` P(class 1) when ``C == 2``).
        class_names: The ``C`` class names, in label order.
        ordinal: Add ``kappa_quadratic`` (classes ordered as given, e.g. ISUP grades).

    Returns:
        The weighted-metrics function; see the module docstring for the metric names.
    """
    y, p = _check(y_true, probs, class_names)
    c = len(class_names)
    pred = p.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    cell = np.zeros((len(y), c * c))
    cell[np.arange(len(y)), y * c + pred] = 1.0  # one-hot (true, predicted) cell per row
    onehot_true = np.eye(c, dtype=bool)[y]
    kappa_w = (np.arange(c)[:, None] - np.arange(c)[None, :]) ** 2.0

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        conf = (w @ cell).reshape(-1, c, c)  # (B, true, pred)
        total = conf.sum(axis=(1, 2))
        support, predicted = conf.sum(axis=2), conf.sum(axis=1)
        tp = np.diagonal(conf, axis1=1, axis2=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
            f1_den = support + predicted
            f1 = np.where(f1_den > 0, 2 * tp / np.where(f1_den > 0, f1_den, 1), 0.0)
            out = {
                "accuracy": tp.sum(axis=1) / total,
                "balanced_accuracy": np.nanmean(np.where(support > 0, recall, np.nan), axis=1),
                "f1_weighted": (support * f1).sum(axis=1) / total,
            }
            if c == 2:
                auc = weighted_auc(p[:, 1], y == 1, w)
                out["auc_macro"], out["auc_weighted"] = auc, auc.copy()
            else:
                per_class = np.stack([weighted_auc(p[:, k], onehot_true[:, k], w) for k in range(c)], 1)
                out["auc_macro"] = per_class.mean(axis=1)  # NaN if any class undefined
                out["auc_weighted"] = (per_class * support).sum(axis=1) / total
                for k, name in enumerate(class_names):
                    out[f"auc[{name}]"] = per_class[:, k]
            if ordinal:
                expected = support[:, :, None] * predicted[:, None, :] / total[:, None, None]
                observed_cost = (conf * kappa_w).sum(axis=(1, 2))
                expected_cost = (expected * kappa_w).sum(axis=(1, 2))
                out["kappa_quadratic"] = np.where(
                    expected_cost > 0, 1 - observed_cost / np.where(expected_cost > 0, expected_cost, 1),
                    np.nan)
        return out

    return stats


def classification_metrics(
    y_true: Any, probs: Any, class_names: Sequence[str], ordinal: bool = False
) -> dict[str, float]:
    """Point estimates of every classification metric on the full data.

    Args:
        y_true: ``(N,)`` integer labels in ``[0, C)``.
        probs: ``(N, C)`` class probabilities (``(N,)`` P(class 1) allowed for binary tasks).
        class_names: The ``C`` class names, in label order.
        ordinal: Also report quadratic-weighted Cohen kappa.

    Returns:
        ``{metric_name: value}`` (NaN where undefined).
    """
    stats = classification_stats(y_true, probs, class_names, ordinal)
    return {k: float(v[0]) for k, v in stats(np.ones((1, len(np.asarray(y_true))))).items()}


def classification_metrics_ci(
    y_true: Any, probs: Any, class_names: Sequence[str], ordinal: bool = False,
    n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Every classification metric with a percentile bootstrap CI over slides/cases.

    Args:
        y_true: ``(N,)`` integer labels in ``[0, C)``.
        probs: ``(N, C)`` class probabilities.
        class_names: The ``C`` class names, in label order.
        ordinal: Also report quadratic-weighted Cohen kappa.
        n_resamples: Defined resamples per metric (undefined resamples are redrawn).
        seed: Bootstrap seed.
        alpha: Two-sided level.

    Returns:
        ``{metric_name: {"value", "ci_low", "ci_high", "n"}}`` (the ``metrics.json`` form of one split).
    """
    stats = classification_stats(y_true, probs, class_names, ordinal)
    return bootstrap_ci_weighted(stats, len(np.asarray(y_true)), n_resamples, seed, alpha)
