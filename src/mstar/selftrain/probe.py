"""Patch-label probes of the student's features: k-NN and a linear probe, scored by balanced accuracy.

Both are fitted on patches of training slides and scored on patches of held-out slides, so a probe never
sees a test slide. k-NN: cosine distance, majority vote of ``k`` neighbours. Linear probe: features
standardised, multinomial logistic regression (L2, C = 1). Balanced accuracy (mean per-class recall)
because tumour and normal patches are not balanced.
"""

from __future__ import annotations

import numpy as np

from mstar.eval.bootstrap import bootstrap_ci_weighted


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 10) -> np.ndarray:
    """Labels of ``test_x`` by majority vote of the ``k`` nearest training rows (cosine)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", algorithm="brute")
    return knn.fit(train_x, train_y).predict(test_x)


def linear_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels of ``test_x`` from a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
    return model.fit(train_x, train_y).predict(test_x)


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
    return {"knn": knn_predict(train_x, train_y, test_x, k), "linear": linear_predict(train_x, train_y, test_x, seed)}


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
