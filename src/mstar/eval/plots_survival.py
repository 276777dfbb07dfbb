"""Kaplan–Meier curves of predicted risk groups with the log-rank test and numbers at risk.

Curves: ``sksurv.nonparametric.kaplan_meier_estimator``. Test: two-group log-rank,
``sksurv.compare_survival`` (chi-square with 1 degree of freedom). Groups: high risk = predicted risk
strictly above the threshold, which defaults to the median risk of the patients plotted (use the test
split; pass the training median as ``threshold`` to avoid fitting the cut on test data).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from mstar.errors import MstarError
from mstar.eval.plots import new_figure, save_figure

log = logging.getLogger(__name__)

N_AT_RISK_TICKS = 5


def logrank_risk_groups(event: Any, time: Any, high: Any) -> float:
    """Log-rank p-value between two groups (``sksurv.compare_survival``); NaN if a group is empty.

    Args:
        event: ``(N,)`` bool, event observed.
        time: ``(N,)`` follow-up times.
        high: ``(N,)`` bool group indicator.

    Returns:
        The two-sided p-value (NaN with a logged reason when undefined).
    """
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    high = np.asarray(high, dtype=bool)
    event = np.asarray(event, dtype=bool)
    if high.all() or not high.any() or not event.any():
        log.warning("log-rank test undefined: need two non-empty groups and at least one event")
        return float("nan")
    y = Surv.from_arrays(event=event, time=np.asarray(time, dtype=float))
    return float(compare_survival(y, high.astype(int))[1])


def plot_km_risk_groups(
    event: Any, time: Any, risk: Any, path: str | os.PathLike, threshold: float | None = None,
    time_unit: str = "months", title: str | None = None,
) -> dict[str, Any]:
    """Kaplan–Meier curves of low- vs high-risk patients, log-rank p-value, numbers at risk.

    Args:
        event: ``(N,)`` bool (or 0/1), event observed.
        time: ``(N,)`` follow-up times.
        risk: ``(N,)`` predicted risk (higher = worse).
        path: PNG to write (700 x 600 px).
        threshold: Risk cut; default the median of ``risk``.
        time_unit: Axis label unit.
        title: Axes title.

    Returns:
        ``{"path", "threshold", "p_value", "n_low", "n_high"}``.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    event = np.asarray(event).astype(bool)
    time = np.asarray(time, dtype=float)
    risk = np.asarray(risk, dtype=float)
    if not (len(event) == len(time) == len(risk)) or len(time) == 0:
        raise MstarError("Kaplan-Meier plot needs event, time and risk of one non-zero length")
    cut = float(np.median(risk)) if threshold is None else float(threshold)
    high = risk > cut
    p_value = logrank_risk_groups(event, time, high)

    fig = new_figure(7.0, 6.0)
    ax = fig.add_axes((0.14, 0.36, 0.81, 0.57))
    table = fig.add_axes((0.14, 0.09, 0.81, 0.13))
    ticks = np.linspace(0.0, time.max(), N_AT_RISK_TICKS)
    groups = [("low risk", ~high, "tab:blue"), ("high risk", high, "tab:red")]
    for row, (name, mask, colour) in enumerate(groups):
        if mask.any():
            t, s = kaplan_meier_estimator(event[mask], time[mask])
            label = f"{name} (n={mask.sum()})"
            ax.step(np.r_[0.0, t], np.r_[1.0, s], where="post", color=colour, label=label)
            censored = mask & ~event
            if censored.any():
                s_at = np.r_[1.0, s][np.searchsorted(t, time[censored], side="right")]
                ax.plot(time[censored], s_at, "|", color=colour, ms=8)
        at_risk = [(time[mask] >= tk).sum() for tk in ticks]
        for tk, count in zip(ticks, at_risk):
            table.text(tk, 1 - row, str(count), ha="center", va="center", color=colour, fontsize=9)
    p_text = "log-rank p = n/a" if np.isnan(p_value) else f"log-rank p = {p_value:.2g}"
    xlim = (-0.04 * time.max(), time.max() * 1.04)
    ax.set(ylim=(0, 1.02), xlim=xlim, xticks=ticks, ylabel="survival probability",
           title=title or "Kaplan-Meier by predicted risk")
    ax.xaxis.set_major_formatter("{x:.3g}")
    ax.legend(loc="upper right", fontsize=9, title=p_text, title_fontsize=9)
    table.set(xlim=xlim, ylim=(-0.5, 1.5), yticks=[0, 1], xticks=ticks,
              xlabel=f"time ({time_unit}); numbers at risk above")
    table.set_yticklabels(["high", "low"], fontsize=8)
    table.xaxis.set_major_formatter("{x:.3g}")
    table.tick_params(axis="x", labelsize=8)
    table.tick_params(axis="y", length=0, pad=12)
    for side in ("top", "right", "left"):
        table.spines[side].set_visible(False)
    save_figure(fig, path)
    return {"path": str(path), "threshold": cut, "p_value": p_value,
            "n_low": int((~high).sum()), "n_high": int(high.sum())}
