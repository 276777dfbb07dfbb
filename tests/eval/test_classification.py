"""Classification metrics pinned to scikit-learn, on full data and on bootstrap resamples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci_many
from mstar.eval.classification import (
    classification_metrics,
    classification_metrics_ci,
    classification_stats,
    weighted_auc,
)


def _data(n_classes: int, seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = np.round(probs, 2)  # rounding creates tied scores
    return y, probs / probs.sum(1, keepdims=True)


def _sklearn(y, probs, n_classes):
    pred = probs.argmax(1)
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1_weighted": skm.f1_score(y, pred, average="weighted", zero_division=0),
        "kappa_quadratic": skm.cohen_kappa_score(y, pred, weights="quadratic", labels=list(range(n_classes))),
    }
    if n_classes == 2:
        out["auc_macro"] = out["auc_weighted"] = skm.roc_auc_score(y, probs[:, 1])
    else:
        out["auc_macro"] = skm.roc_auc_score(y, probs, multi_class="ovr", average="macro")
        out["auc_weighted"] = skm.roc_auc_score(y, probs, multi_class="ovr", average="weighted")
        for k in range(n_classes):
            out[f"auc[c{k}]"] = skm.roc_auc_score(y == k, probs[:, k])
    return out


@pytest.mark.parametrize("n_classes", [2, 3, 6])
@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn(n_classes, seed):
    y, probs = _data(n_classes, seed)
    ours = classification_metrics(y, probs, [f"c{k}" for k in range(n_classes)], ordinal=True)
    ref = _sklearn(y, probs, n_classes)
    assert set(ours) == set(ref)
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_weighted_metrics_equal_sklearn_on_resampled_rows():
    y, probs = _data(4, 11)
    names = [f"c{k}" for k in range(4)]
    stats = classification_stats(y, probs, names, ordinal=True)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.integers(0, len(y), len(y))
        w = np.bincount(idx, minlength=len(y))[None, :].astype(float)
        ours = {k: v[0] for k, v in stats(w).items()}
        if len(np.unique(y[idx])) < 4:
            assert np.isnan(ours["auc_macro"])
            continue
        for name, value in _sklearn(y[idx], probs[idx], 4).items():
            assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_ci_equals_generic_bootstrap_with_sklearn():
    y, probs = _data(3, 4, n=60)
    names = ["a", "b", "c"]
    fast = classification_metrics_ci(y, probs, names, n_resamples=100, seed=7)

    def sk(yy, pp):
        bacc = skm.balanced_accuracy_score(yy, pp.argmax(1))
        if len(np.unique(yy)) < 3:
            return {"auc_macro": float("nan"), "balanced_accuracy": bacc}
        return {"auc_macro": skm.roc_auc_score(yy, pp, multi_class="ovr"), "balanced_accuracy": bacc}

    slow = bootstrap_ci_many(sk, y, probs, n_resamples=100, seed=7)
    for name in ("auc_macro", "balanced_accuracy"):
        for key in ("value", "ci_low", "ci_high", "n"):
            assert fast[name][key] == pytest.approx(slow[name][key], abs=1e-12)
    assert fast["auc_macro"]["ci_low"] < fast["auc_macro"]["value"] < fast["auc_macro"]["ci_high"]


def test_perfect_and_binary_vector_input():
    y = np.array([0, 0, 1, 1])
    out = classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), ["neg", "pos"])
    assert out == {"accuracy": 1.0, "balanced_accuracy": 1.0, "f1_weighted": 1.0,
                   "auc_macro": 1.0, "auc_weighted": 1.0}


def test_weighted_auc_ties_count_half():
    score = np.array([0.5, 0.5, 0.5, 0.5])
    assert weighted_auc(score, np.array([True, False, True, False]), np.ones((1, 4)))[0] == 0.5
    assert np.isnan(weighted_auc(score, np.array([True] * 4), np.ones((1, 4)))[0])


def test_bad_inputs_raise_user_errors():
    with pytest.raises(MstarError, match="shape"):
        classification_metrics([0, 1], np.ones((2, 3)) / 3, ["a", "b"])
    with pytest.raises(MstarError, match="labels"):
        classification_metrics([0, 5], np.ones((2, 2)) / 2, ["a", "b"])
