"""Kaplan-Meier risk-group figure and the log-rank test (pinned to sksurv.compare_survival)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sksurv.compare import compare_survival
from sksurv.util import Surv

from mstar.eval.plots_survival import logrank_risk_groups, plot_km_risk_groups

from .test_plots import png_size


def test_kaplan_meier(tmp_path):
    rng = np.random.default_rng(0)
    risk = rng.normal(size=120)
    t = rng.exponential(20 * np.exp(-1.5 * risk))
    c = rng.exponential(40, 120)
    event, time = t < c, np.minimum(t, c)
    out = plot_km_risk_groups(event, time, risk, tmp_path / "km.png")
    assert png_size(Path(out["path"])) == (700, 600)
    assert out["n_low"] == out["n_high"] == 60 and out["p_value"] < 1e-3
    high = risk > np.median(risk)
    assert out["p_value"] == compare_survival(Surv.from_arrays(event, time), high.astype(int))[1]
    assert np.isnan(logrank_risk_groups(event, time, np.zeros(120, dtype=bool)))
