"""Figures of a run: ROC + confusion matrix (classification), Kaplan-Meier risk groups (survival),
training curves. Test predictions of every CV fold are pooled; of repeated runs, the first is shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mstar.eval import plots
from mstar.eval.plots_survival import plot_km_risk_groups


def _first_runs(preds: pd.DataFrame) -> pd.DataFrame:
    return preds[~preds["unit"].astype(str).str.contains(r"-run[1-9]\d*$", regex=True)]


def write_figures(run: Path, objective, preds: pd.DataFrame) -> list[Path]:
    """Write the run's figures into ``run/figures``; return their paths."""
    fig_dir = run / "figures"
    written = []
    shown = _first_runs(preds)
    test = shown[shown["split"] == "test"]
    if len(test) and objective.kind == "classification":
        probs = test[[f"prob_{c}" for c in objective.classes]].to_numpy(float)
        y = test["y"].to_numpy(int)
        written.append(plots.plot_roc(y, probs, objective.classes, fig_dir / "roc_test.png",
                                      title="test ROC"))
        written.append(plots.plot_confusion(y, probs.argmax(1), objective.classes,
                                            fig_dir / "confusion_test.png", title="test confusion matrix"))
    if len(test) and objective.kind == "survival":
        # Risk groups cut at the median validation risk of each unit (never a test-derived threshold).
        centred = []
        for unit, g in test.groupby("unit"):
            val = shown[(shown["unit"] == unit) & (shown["split"] == "val")]
            cut = float(np.median(val["risk"])) if len(val) else float(np.median(g["risk"]))
            centred.append(g["risk"].to_numpy(float) - cut)
        risk = np.concatenate(centred)
        t = pd.concat([g for _, g in test.groupby("unit")])
        plot_km_risk_groups(t["event"].to_numpy(bool), t["time"].to_numpy(float), risk,
                            fig_dir / "km_test.png", threshold=0.0, title="test: high vs low predicted risk")
        written.append(fig_dir / "km_test.png")
    log_path = run / "log.csv"
    if log_path.exists():
        log = pd.read_csv(log_path)
        first = log[log["unit"] == log["unit"].iloc[0]].drop(columns=["unit"]) if "unit" in log else log
        written.append(plots.plot_training_curves(first, fig_dir / "training_curves.png"))
    return written
