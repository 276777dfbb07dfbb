"""Time-dependent AUC / integrated Brier score of discrete survival curves, pinned to sksurv."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv

from mstar.eval.survival import discretize_survival
from mstar.eval.survival_curves import (
    risk_from_survival,
    survival_at_times,
    time_dependent_metrics,
    time_dependent_metrics_ci,
)


def test_step_function_drops_at_bin_ends():
    surv = np.array([[0.9, 0.7, 0.4, 0.1]])
    edges = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    got = survival_at_times(surv, edges, [0.0, 9.9, 10.0, 25.0, 30.0, 45.0])
    np.testing.assert_allclose(got, [[1.0, 1.0, 0.9, 0.7, 0.4, 0.1]])
    np.testing.assert_allclose(risk_from_survival(surv), [-2.1])


def _cohort(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    t = rng.exponential(20 * np.exp(-risk))
    c = rng.exponential(30, n)
    event, time = t < c, np.minimum(t, c)
    hazards = 1 / (1 + np.exp(-(risk[:, None] - 1.0))) * np.ones((1, 4))
    return event, time, np.cumprod(1 - hazards, axis=1)


def test_matches_sksurv_at_interior_edges():
    event, time, surv = _cohort()
    tr, te = slice(0, 200), slice(200, 400)
    _, edges = discretize_survival(time[tr], event[tr])
    out = time_dependent_metrics(surv[te], edges, event[te], time[te], event[tr], time[tr])
    times = edges[1:-1]
    y_tr = Surv.from_arrays(event[tr], time[tr])
    y_te = Surv.from_arrays(event[te], time[te])
    s_t = surv[te][:, :3]  # at edge k+1 the survival is S[k]
    td_auc = cumulative_dynamic_auc(y_tr, y_te, 1 - s_t, times)[1]
    assert out["td_auc_mean"] == pytest.approx(td_auc, abs=1e-12)
    assert out["ibs"] == pytest.approx(integrated_brier_score(y_tr, y_te, s_t, times), abs=1e-12)
    assert 0.6 < out["td_auc_mean"] < 1.0


def test_ci_contains_value():
    event, time, surv = _cohort(1, 300)
    _, edges = discretize_survival(time[:150], event[:150])
    out = time_dependent_metrics_ci(surv[150:], edges, event[150:], time[150:], event[:150], time[:150],
                                    n_resamples=50)
    for entry in out.values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"] and entry["n"] == 150


def test_undefined_is_nan_with_reason(caplog):
    event, time, surv = _cohort(2, 100)
    edges = np.array([0.0, 1e6, 2e6, 3e6, 4e6])  # no interior edge inside the follow-up
    with caplog.at_level(logging.WARNING):
        out = time_dependent_metrics(surv, edges, event, time, event, time)
    assert np.isnan(out["td_auc_mean"]) and np.isnan(out["ibs"])
    assert "no evaluation time" in caplog.text
    one_time = time_dependent_metrics(surv, edges, event, time, event, time, times=[np.median(time)])
    assert np.isfinite(one_time["td_auc_mean"]) and np.isnan(one_time["ibs"])


def test_test_follow_up_beyond_training_is_truncated_without_changing_the_metrics():
    event, time, surv = _cohort(3, 400)
    tr, te = slice(0, 200), slice(200, 400)
    train_max = time[tr].max()
    keep = time[te] < train_max  # a test set inside the training follow-up...
    ev, tm, sv = event[te][keep], time[te][keep], surv[te][keep]
    _, edges = discretize_survival(time[tr], event[tr])
    base = time_dependent_metrics(sv, edges, ev, tm, event[tr], time[tr])
    late = tm > edges[-2]  # ...whose patients beyond the last interior edge now live past the training max
    moved = np.where(late, train_max + 10 + np.arange(len(tm)), tm)
    out = time_dependent_metrics(sv, edges, ev, moved, event[tr], time[tr])
    assert late.any() and np.isfinite(base["ibs"])
    assert out == pytest.approx(base, abs=1e-12)
