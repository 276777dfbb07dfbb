"""Probes of frozen embeddings: k-NN and the one linear probe of mstar, scored by balanced accuracy.

Used for stage 2's patch-label probes (fitted on patches of training slides, scored on held-out slides) and
few-shot classification of slide embeddings (fitted on k support slides per class).

- k-NN: cosine distance, majority vote of ``k`` neighbours.
- Linear probe: multinomial logistic regression (L2) on standardised features (``scale="standardize"``,
  stage 2) or on L2-normalised ones (``scale="unit"``, few-shot); ``C`` fixed, or (``C=None``) chosen by
  stratified inner cross-validation over a log grid when every class has at least two examples.
- Balanced accuracy (mean per-class recall, classes of ``y``) with percentile bootstrap CIs, alone or as the
  paired change between two predictions of the same rows.
"""

from __future__ import annotations

import numpy as np

from mstar.eval.bootstrap import bootstrap_ci_weighted


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 10) -> np.ndarray:
    """Labels of ``test_x`` by majority vote of the ``k`` nearest training rows (cosine)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", algorithm="brute")
    return knn.fit(train_x, train_y).predict(test_x)


C_GRID = tuple(float(c) for c in np.logspace(-2, 3, 6))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, scale: str = "standardize",
                 c: float | None = 1.0, max_iter: int = 2000, cv_folds: int = 5,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Class probabilities of ``test_x`` from a logistic regression fitted on ``(train_x, train_y)``.

    Args:
        train_x, train_y: ``(N, D)`` features and their labels.
        test_x: ``(Q, D)`` features to score.
        scale: ``standardize`` (per-feature z-score fitted on the training rows) or ``unit`` (L2 rows).
        c: Inverse regularisation; None chooses it from :data:`C_GRID` by stratified inner CV
            (``min(k, cv_folds)`` folds, k = the smallest class count; C = 1 when k < 2).
        max_iter: Solver iterations.
        cv_folds: Most inner folds.
        seed: Seed of the inner folds.

    Returns:
        ``(probs (Q, K), classes (K,), C used)``; columns follow ``classes`` (the sorted training labels).
    """
    import warnings

    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if scale == "unit":
        train_x, test_x = unit_rows(train_x), unit_rows(test_x)
    k = int(np.unique(train_y, return_counts=True)[1].min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence/futures warnings on tiny folds
        if c is None and k >= 2:
            cv = StratifiedKFold(n_splits=min(k, cv_folds), shuffle=True, random_state=seed)
            clf = LogisticRegressionCV(Cs=list(C_GRID), cv=cv, max_iter=max_iter)
        else:
            clf = LogisticRegression(C=c or 1.0, max_iter=max_iter, random_state=seed)
        model = make_pipeline(StandardScaler(), clf) if scale == "standardize" else clf
        model.fit(train_x, train_y)
    c_used = float(np.ravel(clf.C_)[0]) if isinstance(clf, LogisticRegressionCV) else float(c or 1.0)
    return model.predict_proba(test_x), clf.classes_, c_used


def linear_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels of ``test_x`` from :func:`linear_probe` on standardised features (C = 1)."""
    probs, classes, _ = linear_probe(train_x, train_y, test_x, seed=seed)
    return classes[probs.argmax(axis=1)]


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y``."""
    classes = np.unique(y)
    return float(np.mean([(pred[y == c] == c).mean() for c in classes])) if len(classes) else float("nan")


def balanced_accuracy_ci(y: np.ndarray, pred: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict:
    """``{value, ci_low, ci_high, n}``: percentile bootstrap over test patches (vectorised)."""
    y, pred = np.asarray(y), np.asarray(pred)
    onehot = np.stack([y == c for c in np.unique(y)], axis=1).astype(float)  # (n, C)
    hit = onehot * (pred == y)[:, None]  # (n, C)

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = (w @ hit) / (w @ onehot)  # (B, C); NaN for classes absent from a resample
            return {"bacc": np.nanmean(recall, axis=1)}

    return bootstrap_ci_weighted(stats, len(y), n_resamples, seed)["bacc"]


def probe_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """``{"knn": pred, "linear": pred}`` for the test rows (NaN-free features expected)."""
    if len(np.unique(train_y)) < 2:
        return {}
    return {"knn": knn_predict(train_x, train_y, test_x, k),
            "linear": linear_predict(train_x, train_y, test_x, seed)}


def paired_change_ci(y: np.ndarray, before: np.ndarray, after: np.ndarray, n_resamples: int = 1000,
                     seed: int = 0) -> dict:
    """Balanced accuracy of ``after`` minus that of ``before`` on the same test rows, with a paired bootstrap
    CI (both scored on the same resamples)."""
    y = np.asarray(y)
    onehot = np.stack([y == c for c in np.unique(y)], axis=1).astype(float)  # (n, C)
    hit_b = onehot * (np.asarray(before) == y)[:, None]
    hit_a = onehot * (np.asarray(after) == y)[:, None]

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            total = w @ onehot  # (B, C)
            return {"d": np.nanmean((w @ hit_a) / total, axis=1) - np.nanmean((w @ hit_b) / total, axis=1)}

    return bootstrap_ci_weighted(stats, len(y), n_resamples, seed)["d"]
