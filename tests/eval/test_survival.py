"""C-index parity with sksurv (ties included), bootstrap speed/equality, discrete-time bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci
from mstar.eval.survival import (
    apply_survival_bins,
    concordance_difference_ci,
    concordance_index,
    concordance_index_ci,
    discretize_survival,
)


def _tied_data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 10, n).astype(float)  # many tied times
    event = rng.random(n) < 0.5
    risk = rng.integers(0, 5, n) + (rng.random(n) < 0.3) * 5e-9  # exact ties and ties within tied_tol
    return event, time, risk


@pytest.mark.parametrize("seed", range(60))
def test_equals_sksurv_with_ties(seed):
    event, time, risk = _tied_data(seed, int(np.random.default_rng(seed).integers(3, 80)))
    if not event.any():
        event[0] = True
    try:
        ref = concordance_index_censored(event, time, risk, tied_tol=1e-8)[0]
    except Exception:  # sksurv raises when no pair is comparable
        ref = float("nan")
    ours = concordance_index(event, time, risk)
    assert ours == ref or (np.isnan(ours) and np.isnan(ref))


def test_continuous_data_and_int_events():
    rng = np.random.default_rng(3)
    time, risk = rng.exponential(size=300), rng.normal(size=300)
    event = (rng.random(300) < 0.6).astype(int)
    ref = concordance_index_censored(event.astype(bool), time, risk)[0]
    assert concordance_index(event, time, risk) == ref


def test_toy_cases():
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    event = np.ones(5, dtype=bool)
    assert concordance_index(event, time, -time) == 1.0  # perfect ranking
    assert concordance_index(event, time, time) == 0.0  # reversed
    assert concordance_index(event, time, np.zeros(5)) == 0.5  # all tied
    assert np.isnan(concordance_index(np.zeros(5, dtype=bool), time, -time))  # no events


def test_bootstrap_equals_generic_bootstrap_over_sksurv():
    event, time, risk = _tied_data(5, 60)
    fast = concordance_index_ci(event, time, risk, n_resamples=200, seed=2)

    def sk(e, t, r):
        return concordance_index_censored(e, t, r, tied_tol=1e-8)[0]

    slow = bootstrap_ci(sk, event, time, risk, n_resamples=200, seed=2)
    assert fast == pytest.approx(slow, abs=1e-12)

    rng = np.random.default_rng(0)
    n = 500
    t, r = rng.exponential(size=n), rng.normal(size=n)
    e = rng.random(n) < 0.5
    out = concordance_index_ci(e, t, r, n_resamples=1000)
    assert out["ci_low"] <= out["value"] <= out["ci_high"] and out["n"] == n


def test_ci_narrows_with_more_patients():
    rng = np.random.default_rng(1)

    def width(n):
        risk = rng.normal(size=n)
        t = rng.exponential(np.exp(-risk))
        out = concordance_index_ci(np.ones(n, dtype=bool), t, risk, n_resamples=300)
        return out["ci_high"] - out["ci_low"]

    assert width(800) < 0.6 * width(80)


def test_paired_difference_equals_generic_bootstrap_over_sksurv():
    event, time, risk_a = _tied_data(7, 70)
    risk_b = risk_a + np.random.default_rng(3).normal(size=70) * 2
    fast = concordance_difference_ci(event, time, risk_a, risk_b, n_resamples=200, seed=4)

    def diff(e, t, a, b):
        return (concordance_index_censored(e, t, a, tied_tol=1e-8)[0]
                - concordance_index_censored(e, t, b, tied_tol=1e-8)[0])

    assert fast == pytest.approx(bootstrap_ci(diff, event, time, risk_a, risk_b, n_resamples=200, seed=4),
                                 abs=1e-12)


def test_paired_difference_detects_what_separate_cis_cannot():
    rng = np.random.default_rng(8)
    n = 300
    risk = rng.normal(size=n)
    t = rng.exponential(np.exp(-risk))
    e = rng.random(n) < 0.7
    noise = rng.normal(size=n)
    better, worse = risk + 0.8 * noise, risk + 1.2 * noise  # same errors, B's larger: correlated models
    a, b = concordance_index_ci(e, t, better), concordance_index_ci(e, t, worse)
    assert a["ci_low"] < b["ci_high"]  # the separate intervals overlap ...
    d = concordance_difference_ci(e, t, better, worse)
    assert d["value"] == pytest.approx(a["value"] - b["value"])
    assert d["ci_low"] > 0  # ... the paired interval of the difference does not include 0
    same = concordance_difference_ci(e, t, better, better.copy())
    assert same["value"] == same["ci_low"] == same["ci_high"] == 0.0


def test_discretize_hand_computed():
    time = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 1.0, 12.0])
    event = np.array([1, 1, 1, 1, 1, 0, 0])
    labels, edges = discretize_survival(time, event)
    # quartiles of uncensored [2, 4, 6, 8, 10]: 2, 4, 6, 8, 10; outer edges from all times 1 and 12
    np.testing.assert_allclose(edges, [1 - 1e-6, 4.0, 6.0, 8.0, 12 + 1e-6])
    np.testing.assert_array_equal(labels, [0, 1, 2, 3, 3, 0, 3])  # right-open: 4 -> bin 1


def test_discretize_matches_pandas_qcut_cut():
    rng = np.random.default_rng(4)
    time = rng.exponential(30, 200)
    event = rng.random(200) < 0.6
    labels, edges = discretize_survival(time, event)
    _, q = pd.qcut(time[event], q=4, retbins=True, labels=False)
    q[0], q[-1] = time.min() - 1e-6, time.max() + 1e-6
    ref = pd.cut(time, bins=q, labels=False, right=False, include_lowest=True)
    np.testing.assert_allclose(edges, q)
    np.testing.assert_array_equal(labels, ref)


def test_apply_fixed_edges_clips_out_of_range():
    edges = np.array([1.0, 4.0, 6.0, 8.0, 12.0])
    np.testing.assert_array_equal(apply_survival_bins([0.5, 4.0, 7.9, 12.0, 50.0], edges), [0, 1, 2, 3, 3])


def test_discretize_errors():
    with pytest.raises(MstarError, match="no patient"):
        discretize_survival([1.0, 2.0], [0, 0])
    with pytest.raises(MstarError, match="not distinct"):
        discretize_survival([3.0, 3.0, 3.0, 3.0, 5.0], [1, 1, 1, 1, 0])
    with pytest.raises(MstarError, match="finite"):
        concordance_index([1, 1], [1.0, np.nan], [0.0, 1.0])
