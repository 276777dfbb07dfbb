"""Few-shot classifiers built from k labelled support cases per class.

- **Text-guided prototypes** (upstream mSTAR): for class c, pool the projected, normalised patches of
  the class-c support cases, keep the ``top`` (100) most similar to the class-c text embedding and
  average them (not re-normalised, as upstream); query cases are scored with top-j pooling against the
  prototypes exactly as in zero-shot.
- **SimpleShot** (nearest centroid, CL2N): slide embeddings minus the mean embedding of the unlabelled
  training pool, L2-normalised; each query goes to the nearest class centroid. Scores are
  ``-d^2 / 2`` (= cosine up to a constant for unit vectors).
- **Linear probe**: logistic regression on L2-normalised slide embeddings; the inverse regularisation C is
  chosen by stratified inner cross-validation (``min(k, 5)`` folds) when k >= 2, else C = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mstar.zeroshot.scoring import pooled_scores

C_GRID = tuple(float(c) for c in np.logspace(-2, 3, 6))


def text_prototypes(support: Sequence[np.ndarray], scores: Sequence[np.ndarray], labels: Sequence[int],
                    n_classes: int, top: int = 100) -> np.ndarray:
    """``(C, E)`` prototypes from the kept top patches of each support case.

    Args:
        support: Per support case, its ``(n_i, E)`` patches most similar to its own class text.
        scores: Their class logits ``(n_i,)``.
        labels: Class index of each support case.
        n_classes: Number of classes C.
        top: Patches averaged per class.
    """
    protos = []
    for c in range(n_classes):
        idx = [i for i, y in enumerate(labels) if y == c]
        z = np.concatenate([support[i] for i in idx])  # (n, E)
        s = np.concatenate([scores[i] for i in idx])  # (n,)
        order = np.argsort(-s, kind="stable")[:top]
        protos.append(z[order].astype(np.float32).mean(axis=0))
    return np.stack(protos)  # (C, E)


def prototype_scores(patches: Sequence[np.ndarray], protos: np.ndarray, js: Sequence[int]) -> dict[int, np.ndarray]:
    """``{j: (Q, C)}`` top-j pooled patch-prototype similarities of the query cases."""
    logits = [p.astype(np.float32) @ protos.T for p in patches]  # (N_i, C) each
    return pooled_scores(logits, js)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def simpleshot(support: np.ndarray, labels: np.ndarray, query: np.ndarray, n_classes: int,
               center: np.ndarray) -> np.ndarray:
    """``(Q, C)`` scores ``-||q - centroid_c||^2 / 2`` after centring by ``center`` and L2-normalising."""
    s, q = _unit(support - center), _unit(query - center)
    centroids = np.stack([s[labels == c].mean(axis=0) for c in range(n_classes)])  # (C, E)
    d2 = ((q[:, None, :] - centroids[None]) ** 2).sum(-1)  # (Q, C)
    return -d2 / 2


def linear_probe(support: np.ndarray, labels: np.ndarray, query: np.ndarray, n_classes: int,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """``(Q, C)`` class probabilities of a logistic regression, and the C it used."""
    import warnings

    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    x, q = _unit(support), _unit(query)
    k = int(np.bincount(labels, minlength=n_classes).min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence/futures warnings on tiny folds
        if k >= 2:
            cv = StratifiedKFold(n_splits=min(k, 5), shuffle=True, random_state=seed)
            clf = LogisticRegressionCV(Cs=list(C_GRID), cv=cv, max_iter=5000)  # support is balanced
            clf.fit(x, labels)
            c_used = float(np.ravel(clf.C_)[0])
        else:
            clf = LogisticRegression(C=1.0, max_iter=5000).fit(x, labels)
            c_used = 1.0
    probs = np.zeros((len(q), n_classes))
    probs[:, clf.classes_] = clf.predict_proba(q)
    return probs, c_used
