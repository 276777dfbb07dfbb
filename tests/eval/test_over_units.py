"""Metrics over units (folds, seeds): means that skip units where a metric is undefined, without warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mstar.eval.classification import classification_stats
from mstar.eval.over_units import mean_over_units


def test_units_with_an_undefined_metric_are_skipped_quietly():
    rng = np.random.default_rng(0)
    y3 = np.array([0, 1, 2] * 4)  # every class present
    y2 = np.array([0, 1] * 6)     # a unit whose test split lacks class 2: its macro AUC is undefined
    units = []
    for y in (y3, y2):
        probs = rng.dirichlet(np.ones(3), len(y))
        probs[np.arange(len(y)), y] += 1.0
        units.append((classification_stats(y, probs / probs.sum(1, keepdims=True), ["a", "b", "c"]), len(y),
                      tuple(range(len(y)))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was "Mean of empty slice" on most cross-validated runs
        out = mean_over_units(units, n_resamples=200, seed=0)
    auc = out["auc_macro"]
    assert np.isnan(auc["per_unit"][1]) and auc["value"] == pytest.approx(auc["per_unit"][0])
    assert np.isnan(auc["sd"])  # one unit with a value: no spread
    assert np.isnan(out["auc[c]"]["per_unit"][1])
    acc = out["accuracy"]
    assert acc["value"] == pytest.approx(np.mean(acc["per_unit"]))
    assert acc["sd"] == pytest.approx(np.std(acc["per_unit"], ddof=1))


def test_n_counts_distinct_cases_not_unit_case_pairs():
    rng = np.random.default_rng(1)
    y = np.array([0, 1] * 10)
    units = []
    same, other, overlapping = tuple(range(20)), tuple(range(20, 40)), tuple(range(10, 30))
    for key in (same, same, other):  # two repeated runs on one test set, a fold on another
        probs = rng.dirichlet(np.ones(2), len(y))
        units.append((classification_stats(y, probs, ["a", "b"]), len(y), key))
    assert mean_over_units(units, n_resamples=20, seed=0)["auc_macro"]["n"] == 40
    units[1] = (units[1][0], 20, overlapping)  # a repeat whose cases differ in part (val re-drawn per seed)
    assert mean_over_units(units, n_resamples=20, seed=0)["auc_macro"]["n"] == 40
