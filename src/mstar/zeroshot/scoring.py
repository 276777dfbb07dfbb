"""Scoring shared by zero- and few-shot: top-j pooling, probabilities, metrics and the choice of j.

- Top-j pooling: a slide's score for class c is the mean of its j highest patch logits for c (j is capped
  at the bag size); j = 1 is max pooling, a large j approaches mean pooling.
- Probabilities: ``softmax(scores / temperature)`` (0.07 as upstream); they matter for the ROC-AUC only.
- Choice of j: the best validation balanced accuracy (ties: higher macro AUC, then the smaller j); the
  test split never takes part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mstar.errors import MstarError

DEFAULT_JS = (1, 5, 10, 50, 100)
REPORTED = ("balanced_accuracy", "f1_weighted", "auc_macro", "auc_weighted", "accuracy")
CHANCE = {"balanced_accuracy": "1/C", "auc_macro": 0.5, "auc_weighted": 0.5}


def topj_pool(logits: np.ndarray, j: int) -> np.ndarray:
    """``(N, C)`` patch logits → ``(C,)`` mean of the top ``min(j, N)`` per class."""
    k = max(1, min(int(j), logits.shape[0]))
    part = -np.partition(-logits, k - 1, axis=0)[:k]  # (k, C) the k largest per class
    return part.mean(axis=0)


def pooled_scores(logits: Sequence[np.ndarray], js: Sequence[int]) -> dict[int, np.ndarray]:
    """``{j: (S, C)}`` top-j scores of every case."""
    return {int(j): np.stack([topj_pool(lg, j) for lg in logits]) for j in js}


def softmax(scores: np.ndarray, temperature: float = 0.07) -> np.ndarray:
    """Row-wise ``softmax(scores / temperature)``."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def point_metrics(y: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Balanced accuracy, weighted F1, macro AUC, ... on the data itself (no bootstrap)."""
    from mstar.eval.classification import classification_metrics

    m = classification_metrics(np.asarray(y, dtype=np.int64), probs, list(classes))
    return {k: m[k] for k in REPORTED}


def metric_entries(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], prefix: str, n_boot: int = 1000,
                   seed: int = 0, extra: Mapping | None = None) -> dict[str, dict]:
    """``{"<prefix>/<metric>": {value, ci_low, ci_high, n, chance?, ...extra}}`` with bootstrap CIs."""
    from mstar.eval.classification import classification_metrics_ci

    entries = classification_metrics_ci(np.asarray(y, dtype=np.int64), probs, list(classes),
                                        n_resamples=n_boot, seed=seed)
    out = {}
    for name in REPORTED:
        entry = dict(entries[name])
        if name in CHANCE:
            entry["chance"] = 1.0 / len(classes) if CHANCE[name] == "1/C" else CHANCE[name]
        out[f"{prefix}/{name}"] = {**entry, **dict(extra or {})}
    return out


def choose_j(scores_by_j: Mapping[int, np.ndarray], y: np.ndarray, classes: Sequence[str],
             temperature: float = 0.07) -> tuple[int, dict[int, dict[str, float]]]:
    """The j with the best balanced accuracy on ``(scores, y)`` (a validation split) and every j's metrics."""
    if len(y) == 0:
        raise MstarError("no validation cases to choose j on; add 'val' rows to the manifest or pass --top-j")
    table = {j: point_metrics(y, softmax(s, temperature), classes) for j, s in scores_by_j.items()}

    def key(j: int) -> tuple:
        m = table[j]
        auc = m["auc_macro"] if np.isfinite(m["auc_macro"]) else -1.0
        return (m["balanced_accuracy"], auc, -j)

    return max(table, key=key), table
