"""Percentile bootstrap: values, interval coverage, seeding, redraws, generic == vectorised."""

from __future__ import annotations

import numpy as np
import pytest

from mstar.eval.bootstrap import (
    bootstrap_ci,
    bootstrap_ci_many,
    bootstrap_ci_weighted,
    ci_dict,
    counts_from_indices,
    weighted_mean_stats,
)


def test_mean_ci_contains_value_and_matches_manual_percentiles():
    x = np.random.default_rng(1).normal(2.0, 1.0, 200)
    out = bootstrap_ci(np.mean, x, n_resamples=500, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 200, size=(250, 200))
    idx = np.concatenate([idx, rng.integers(0, 200, size=(250, 200))])
    manual = np.quantile(x[idx].mean(axis=1), [0.025, 0.975])
    assert out["value"] == pytest.approx(x.mean())
    assert out["n"] == 200
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(manual), abs=1e-12)
    assert out["ci_low"] < out["value"] < out["ci_high"]


def test_ci_narrows_with_n_and_is_seeded():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=50), rng.normal(size=2000)
    w_small = bootstrap_ci(np.mean, small, seed=0)
    w_large = bootstrap_ci(np.mean, large, seed=0)
    assert w_large["ci_high"] - w_large["ci_low"] < 0.5 * (w_small["ci_high"] - w_small["ci_low"])
    assert bootstrap_ci(np.mean, small, seed=0) == w_small
    assert bootstrap_ci(np.mean, small, seed=1) != w_small


def test_undefined_resamples_are_redrawn():
    y = np.array([0] * 3 + [1] * 27)  # a resample without class 0 is likely (about 9 %)

    def needs_both(a):
        return float(a.mean()) if 0 < a.sum() < len(a) else float("nan")

    calls = []

    def counting(a):
        v = needs_both(a)
        calls.append(v)
        return v

    out = bootstrap_ci(counting, y, n_resamples=1000, seed=0)
    assert np.isfinite(out["ci_low"]) and np.isfinite(out["ci_high"])
    assert sum(np.isnan(calls)) > 0  # some draws were undefined and skipped
    assert len(calls) - 1 >= 1000 + sum(np.isnan(calls))


def test_value_error_counts_as_undefined():
    def fails(a):
        raise ValueError("nope")

    out = bootstrap_ci(fails, np.arange(5.0), n_resamples=10)
    assert np.isnan(out["value"]) and np.isnan(out["ci_low"])


def test_generic_and_weighted_paths_see_the_same_resamples():
    x = np.random.default_rng(2).exponential(size=80)
    generic = bootstrap_ci(np.mean, x, n_resamples=300, seed=5)
    weighted = bootstrap_ci_weighted(weighted_mean_stats({"mean": x}), 80, n_resamples=300, seed=5)["mean"]
    for key in ("value", "ci_low", "ci_high"):
        assert weighted[key] == pytest.approx(generic[key], rel=1e-12)


def test_many_metrics_share_resamples():
    x = np.arange(10.0)
    out = bootstrap_ci_many(lambda a: {"mean": a.mean(), "max": a.max()}, x, n_resamples=100)
    assert out["mean"]["value"] == 4.5 and out["max"]["value"] == 9.0
    assert out["max"]["ci_high"] == 9.0


def test_counts_from_indices():
    idx = np.array([[0, 0, 2], [1, 2, 2]])
    np.testing.assert_array_equal(counts_from_indices(idx, 3), [[2, 0, 1], [0, 1, 2]])


def test_ci_dict_nan_and_empty():
    assert np.isnan(ci_dict(float("nan"), np.array([1.0]), 3)["ci_low"])
    assert np.isnan(ci_dict(0.5, np.array([]), 3)["ci_high"])


def test_metric_undefined_on_full_data_does_not_force_extra_draws():
    calls = []

    def metrics(a):
        calls.append(1)
        return {"mean": float(a.mean()), "never": float("nan")}

    out = bootstrap_ci_many(metrics, np.arange(20.0), n_resamples=250)
    assert len(calls) == 1 + 250  # one chunk, no redraws for the undefined metric
    assert np.isnan(out["never"]["value"]) and np.isnan(out["never"]["ci_low"])
    assert np.isfinite(out["mean"]["ci_low"])
