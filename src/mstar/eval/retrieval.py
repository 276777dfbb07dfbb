"""Query → gallery retrieval metrics: Recall@K and mAP, with bootstrap CIs over queries.

Ranking: each query ranks the gallery by decreasing similarity; equal similarities keep gallery order
(stable sort), so ties are broken deterministically rather than optimistically. Relevance is either
*paired* (query i matches gallery item i: slide → report, report → slide) or *label-based* (same label
is relevant; for slide → slide within one set, ``exclude_self=True`` removes each query from its own
gallery).

- ``recall@K``: fraction of queries with at least one relevant item among the top K (the hit rate,
  as in cross-modal retrieval; for label-based retrieval this is what pathology papers call Acc@K).
- ``map``: mean over queries of average precision (mean of precision@rank over the ranks of all
  relevant items).

Queries without any relevant gallery item are undefined and left out (their number is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_weighted, weighted_mean_stats

log = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10, 50)


def relevance_paired(n: int) -> np.ndarray:
    """``(n, n)`` relevance where query i matches only gallery item i."""
    return np.eye(n, dtype=bool)


def relevance_from_labels(query_labels: Sequence[Any], gallery_labels: Sequence[Any]) -> np.ndarray:
    """``(Q, G)`` relevance: gallery items with the query's label are relevant."""
    return np.asarray(query_labels)[:, None] == np.asarray(gallery_labels)[None, :]


def _checked(similarity: Any, relevant: Any, exclude_self: bool,
             exclude: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sim = np.asarray(similarity, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    if sim.ndim != 2 or rel.shape != sim.shape:
        raise MstarError(
            f"retrieval needs similarity and relevance of one (Q, G) shape: {sim.shape} vs {rel.shape}"
        )
    if np.isnan(sim).any():
        raise MstarError("retrieval similarity matrix contains NaN")
    excluded = np.zeros_like(rel) if exclude is None else np.array(exclude, dtype=bool)
    if excluded.shape != rel.shape:
        raise MstarError(f"retrieval exclusion mask has shape {excluded.shape}, the similarities {rel.shape}")
    if exclude_self:
        if sim.shape[0] != sim.shape[1]:
            raise MstarError("exclude_self needs queries and gallery to be the same set (a square matrix)")
        np.fill_diagonal(excluded, True)
    return sim, rel & ~excluded, excluded


def retrieval_per_query(
    similarity: Any, relevant: Any, ks: Sequence[int] = DEFAULT_KS, exclude_self: bool = False,
    exclude: Any = None,
) -> dict[str, np.ndarray]:
    """Per-query hit@K and average precision (NaN for queries without a relevant item).

    Args:
        similarity: ``(Q, G)`` similarities (higher = more similar, e.g. cosine).
        relevant: ``(Q, G)`` bool relevance (:func:`relevance_paired`, :func:`relevance_from_labels`).
        ks: Cut-offs K.
        exclude_self: Drop gallery item i from query i's ranking (square matrices only).
        exclude: ``(Q, G)`` bool, gallery items left out of each query's gallery (e.g. other cancer types:
            retrieval within a type).

    Returns:
        ``{"recall@K": (Q,), ..., "map": (Q,)}`` per-query values.
    """
    sim, rel, excluded = _checked(similarity, relevant, exclude_self, exclude)
    order = np.lexsort((-sim, excluded), axis=-1)  # excluded items last, then by similarity
    hits = np.take_along_axis(rel, order, axis=1)  # (Q, G) relevance in rank order
    n_rel = hits.sum(axis=1)
    cum = np.cumsum(hits, axis=1)
    g_eff = sim.shape[1] - excluded.sum(axis=1)  # (Q,) gallery size of each query
    has = n_rel > 0
    if (~has).any():
        log.warning("retrieval: %d of %d queries have no relevant gallery item and are left out",
                    int((~has).sum()), len(has))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        k_eff = np.minimum(int(k), np.maximum(g_eff, 1))  # (Q,): K beyond a query's gallery is its gallery
        out[f"recall@{k}"] = np.where(has, (cum[np.arange(len(cum)), k_eff - 1] > 0).astype(float), np.nan)
    precision = cum / np.arange(1, sim.shape[1] + 1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["map"] = np.where(has, (precision * hits).sum(axis=1) / np.maximum(n_rel, 1), np.nan)
    return out


def retrieval_metrics(
    similarity: Any, relevant: Any, ks: Sequence[int] = DEFAULT_KS, exclude_self: bool = False
) -> dict[str, float]:
    """Recall@K and mAP averaged over queries (arguments as :func:`retrieval_per_query`)."""
    per_query = retrieval_per_query(similarity, relevant, ks, exclude_self)
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per_query.items()}


def retrieval_metrics_ci(
    similarity: Any, relevant: Any, ks: Sequence[int] = DEFAULT_KS, exclude_self: bool = False,
    n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05, exclude: Any = None,
) -> dict[str, dict[str, Any]]:
    """Recall@K and mAP with percentile bootstrap CIs over queries (the gallery stays fixed).

    Returns:
        ``{metric: {"value", "ci_low", "ci_high", "n"}}`` where ``n`` counts the queries that have a
        relevant item.
    """
    per_query = retrieval_per_query(similarity, relevant, ks, exclude_self, exclude)
    keep = np.isfinite(per_query["map"])
    stats = weighted_mean_stats({k: v[keep] for k, v in per_query.items()})
    return bootstrap_ci_weighted(stats, int(keep.sum()), n_resamples, seed, alpha)


def _expected_hit(g: int, r: int, k: int) -> float:
    """P(at least one of r relevant among the top k of g under a uniformly random ranking)."""
    k = min(k, g)
    miss = 1.0
    for i in range(k):
        miss *= max(g - r - i, 0) / (g - i)
    return 1.0 - miss


def _expected_ap(g: int, r: int) -> float:
    """E[AP] under a random ranking of g items with r relevant: (H_g + (r-1)/(g-1)(g - H_g)) / g."""
    if g == 1:
        return 1.0
    h = float(np.sum(1.0 / np.arange(1, g + 1)))
    return (h + (r - 1) / (g - 1) * (g - h)) / g


def chance_levels(
    relevant: Any, ks: Sequence[int] = DEFAULT_KS, exclude_self: bool = False, exclude: Any = None,
) -> dict[str, float]:
    """Expected Recall@K and mAP under uniformly random rankings (same queries and relevance).

    Args:
        relevant: ``(Q, G)`` bool relevance.
        ks: Cut-offs K.
        exclude_self, exclude: As in :func:`retrieval_per_query`.

    Returns:
        ``{"recall@K": float, ..., "map": float}``; e.g. paired retrieval gives ``K / G`` and
        ``H_G / G``.
    """
    rel = np.asarray(relevant, dtype=bool)
    _, rel, excluded = _checked(np.zeros(rel.shape), rel, exclude_self, exclude)
    g_eff = rel.shape[1] - excluded.sum(axis=1)
    pairs = [(int(g), int(r)) for g, r in zip(g_eff, rel.sum(axis=1)) if r > 0]
    if not pairs:
        return {**{f"recall@{k}": float("nan") for k in ks}, "map": float("nan")}
    out = {f"recall@{k}": float(np.mean([_expected_hit(g, r, int(k)) for g, r in pairs])) for k in ks}
    out["map"] = float(np.mean([_expected_ap(g, r) for g, r in pairs]))
    return out
