"""Evaluation: metrics with percentile bootstrap CIs, result files and figures.

Light, numpy-only metrics are re-exported here. Import the heavier modules explicitly:
``mstar.eval.results`` (metrics.json / predictions.csv), ``mstar.eval.survival_curves`` (sksurv
time-dependent AUC, integrated Brier score), ``mstar.eval.text_metrics`` (pycocoevalcap report
metrics), ``mstar.eval.plots`` and ``mstar.eval.plots_survival`` (matplotlib figures).
See ``docs/evaluation.md``.
"""

from mstar.eval.bootstrap import bootstrap_ci, bootstrap_ci_many, bootstrap_ci_weighted, ci_dict
from mstar.eval.classification import classification_metrics, classification_metrics_ci
from mstar.eval.retrieval import (
    chance_levels,
    relevance_from_labels,
    relevance_paired,
    retrieval_metrics,
    retrieval_metrics_ci,
)
from mstar.eval.survival import (
    apply_survival_bins,
    concordance_index,
    concordance_index_ci,
    discretize_survival,
)

__all__ = [
    "apply_survival_bins",
    "bootstrap_ci",
    "bootstrap_ci_many",
    "bootstrap_ci_weighted",
    "chance_levels",
    "ci_dict",
    "classification_metrics",
    "classification_metrics_ci",
    "concordance_index",
    "concordance_index_ci",
    "discretize_survival",
    "relevance_from_labels",
    "relevance_paired",
    "retrieval_metrics",
    "retrieval_metrics_ci",
]
