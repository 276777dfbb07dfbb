"""Few-shot classifiers built from k labelled support cases per class.

- **Text-guided prototypes**: each support case keeps its ``top`` (100) projected, normalised patches most
  similar to its class text. ``rule="per_case"`` (default) averages each case's kept patches, then the case
  means of a class, and L2-normalises the prototype, so every support case weighs the same and prototypes
  of all classes have one norm. ``rule="upstream"`` (mSTAR's script) pools the kept patches of all class-c
  cases, keeps the ``top`` most text-similar overall and averages them without re-normalising: with more
  shots those become the few most extreme patches of one or two cases and the prototypes' norms differ by
  class, which is why its accuracy fell with k on a cohort it was not tuned on (docs/zeroshot.md). Query
  cases are scored with top-j pooling against the prototypes exactly as in zero-shot.
- **SimpleShot** (nearest centroid, CL2N): slide embeddings minus the mean embedding of the unlabelled
  training pool, L2-normalised; each query goes to the nearest class centroid. Scores are
  ``-d^2 / 2`` (= cosine up to a constant for unit vectors).
- **Linear probe**: :func:`mstar.eval.probes.linear_probe` on L2-normalised slide embeddings; the inverse
  regularisation C is chosen by stratified inner cross-validation (``min(k, 5)`` folds) when k >= 2,
  else C = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mstar.eval.probes import linear_probe as fit_probe
from mstar.eval.probes import unit_rows
from mstar.zeroshot.scoring import pooled_scores

PROTOTYPE_RULES = ("per_case", "upstream")


def text_prototypes(support: Sequence[np.ndarray], scores: Sequence[np.ndarray], labels: Sequence[int],
                    n_classes: int, top: int = 100, rule: str = "per_case") -> np.ndarray:
    """``(C, E)`` prototypes from the kept top patches of each support case.

    Args:
        support: Per support case, its ``(n_i, E)`` patches most similar to its own class text.
        scores: Their class logits ``(n_i,)``.
        labels: Class index of each support case.
        n_classes: Number of classes C.
        top: Patches averaged per class (``upstream``) or per case (``per_case``).
        rule: ``per_case`` or ``upstream`` (see the module docstring).
    """
    if rule not in PROTOTYPE_RULES:
        raise ValueError(f"prototype rule {rule!r}; use one of {PROTOTYPE_RULES}")
    protos = []
    for c in range(n_classes):
        idx = [i for i, y in enumerate(labels) if y == c]
        if rule == "per_case":
            means = []
            for i in idx:
                order = np.argsort(-scores[i], kind="stable")[:top]
                means.append(support[i][order].astype(np.float32).mean(axis=0))  # (E,)
            proto = np.mean(means, axis=0)  # (E,)
            protos.append(proto / max(float(np.linalg.norm(proto)), 1e-12))
            continue
        z = np.concatenate([support[i] for i in idx])  # (n, E)
        s = np.concatenate([scores[i] for i in idx])  # (n,)
        order = np.argsort(-s, kind="stable")[:top]
        protos.append(z[order].astype(np.float32).mean(axis=0))
    return np.stack(protos).astype(np.float32)  # (C, E)


def prototype_scores(patches: Sequence[np.ndarray], protos: np.ndarray,
                     js: Sequence[int]) -> dict[int, np.ndarray]:
    """``{j: (Q, C)}`` top-j pooled patch-prototype similarities of the query cases."""
    logits = [p.astype(np.float32) @ protos.T for p in patches]  # (N_i, C) each
    return pooled_scores(logits, js)


def simpleshot(support: np.ndarray, labels: np.ndarray, query: np.ndarray, n_classes: int,
               center: np.ndarray) -> np.ndarray:
    """``(Q, C)`` scores ``-||q - centroid_c||^2 / 2`` after centring by ``center`` and L2-normalising."""
    s, q = unit_rows(support - center), unit_rows(query - center)
    centroids = np.stack([s[labels == c].mean(axis=0) for c in range(n_classes)])  # (C, E)
    d2 = ((q[:, None, :] - centroids[None]) ** 2).sum(-1)  # (Q, C)
    return -d2 / 2


def linear_probe(support: np.ndarray, labels: np.ndarray, query: np.ndarray, n_classes: int,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """``(Q, C)`` class probabilities of the linear probe (:func:`mstar.eval.probes.linear_probe` on
    L2-normalised slide embeddings, C chosen by inner CV when k >= 2) and the C it used."""
    probs_k, classes, c_used = fit_probe(support, labels, query, scale="unit", c=None, max_iter=5000,
                                         seed=seed)
    probs = np.zeros((len(query), n_classes))
    probs[:, classes] = probs_k
    return probs, c_used
