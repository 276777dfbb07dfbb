"""Evaluation figures (PNG, written atomically): ROC, confusion matrix, training curves, few-shot
metric-vs-k, 2-D embedding projections and the paired differences of `mstar compare`. Kaplan–Meier curves
live in :mod:`mstar.eval.plots_survival`.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly (no pyplot, no global
backend switch), at a fixed size: the PNG is ``figsize * dpi`` pixels (no tight bounding box).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mstar.errors import MstarError
from mstar.utils.atomic import atomic_path

DPI = 100


def new_figure(width_in: float = 6.0, height_in: float = 5.0, dpi: int = DPI) -> Figure:
    """A pyplot-free figure attached to an Agg canvas."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (size ``figsize * dpi`` pixels)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    return Path(path)


def plot_roc(
    y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike, title: str | None = None
) -> Path:
    """ROC curves, one per class (one-vs-rest; binary: class 1 only), AUC in the legend.

    Args:
        y_true: ``(N,)`` integer labels.
        probs: ``(N, C)`` class probabilities.
        class_names: Class names in label order.
        path: PNG to write (600 x 500 px).
        title: Optional axes title.

    Returns:
        The written path.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=float)
    fig = new_figure()
    ax = fig.add_subplot()
    classes = [1] if len(class_names) == 2 else range(len(class_names))
    for k in classes:
        positive = y == k
        if positive.all() or not positive.any():
            continue  # undefined for this class
        fpr, tpr, _ = roc_curve(positive, p[:, k])
        ax.plot(fpr, tpr, lw=1.5, label=f"{class_names[k]} (AUC {roc_auc_score(positive, p[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=title or "ROC")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_confusion(
    y_true: Any, y_pred: Any, class_names: Sequence[str], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Confusion matrix: counts written in the cells, shading by row-normalised fraction (recall).

    Returns:
        The written path (600 x 500 px).
    """
    c = len(class_names)
    counts = np.zeros((c, c), dtype=int)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros((c, c)), where=rows > 0)
    fig = new_figure()
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    for i in range(c):
        for j in range(c):
            ax.text(j, i, f"{counts[i, j]}", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black", fontsize=9)
    ax.set(xticks=range(c), yticks=range(c), xlabel="predicted", ylabel="true", title=title or "confusion")
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(class_names, fontsize=8)
    return save_figure(fig, path)


def plot_training_curves(
    log_csv: str | os.PathLike | pd.DataFrame, path: str | os.PathLike, x: str = "epoch"
) -> Path:
    """Training curves from ``log.csv``: one panel per metric, one line per split.

    Columns named ``<split>/<metric>`` (``train/loss``, ``val/auc_macro``) or ``train_<metric>`` /
    ``val_<metric>`` share the panel of their metric; other columns get their own panel. Missing values (a
    metric not logged every epoch) are skipped per line.

    Returns:
        The written path (width 4 in per panel, at most 3 panels per row, 3.5 in per row).
    """
    df = log_csv if isinstance(log_csv, pd.DataFrame) else pd.read_csv(log_csv)
    if x not in df.columns:
        raise MstarError(f"training log has no '{x}' column (columns: {list(df.columns)})")
    panels: dict[str, list[tuple[str, str]]] = {}
    for col in df.columns:
        if col == x or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        split, _, metric = col.rpartition("/")
        if not split and col.startswith(("train_", "val_")):
            split, _, metric = col.partition("_")
        panels.setdefault(metric, []).append((split or metric, col))
    if not panels:
        raise MstarError("training log has no numeric metric columns to plot")
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = new_figure(4.0 * ncols, 3.5 * nrows)
    for i, (metric, lines) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for label, col in lines:
            ok = df[col].notna()
            ax.plot(df.loc[ok, x], df.loc[ok, col], marker=".", label=label)
        ax.set(xlabel=x, title=metric)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_metric_vs_k(
    results: pd.DataFrame, path: str | os.PathLike, metric: str = "value", method_col: str = "method",
    k_col: str = "k", title: str | None = None,
) -> Path:
    """Few-shot curves: median over seeded runs per (method, k) with the interquartile band.

    Args:
        results: One row per run with columns ``method_col``, ``k_col`` and ``metric``.
        path: PNG to write (600 x 500 px); k is on a log2 axis.
        metric: Column holding the metric value.
        method_col: Column naming the method (one line each).
        k_col: Column with the number of support examples per class.
        title: Axes title (default: the metric column).

    Returns:
        The written path.
    """
    fig = new_figure()
    ax = fig.add_subplot()
    for method, group in results.groupby(method_col, sort=False):
        q = group.groupby(k_col)[metric].quantile([0.25, 0.5, 0.75]).unstack()
        line = ax.plot(q.index, q[0.5], marker="o", label=str(method))[0]
        ax.fill_between(q.index, q[0.25], q[0.75], color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ks = np.sort(results[k_col].unique())
    ax.set_xticks(ks, [f"{k:g}" for k in ks])
    ax.set(xlabel="k (examples per class)", ylabel=metric, title=title or f"few-shot {metric}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_embeddings_2d(
    embeddings: Any, labels: Sequence[Any], path: str | os.PathLike, method: str = "pca", seed: int = 0,
    title: str | None = None,
) -> Path:
    """2-D projection of embeddings (PCA, or t-SNE with ``method="tsne"``), points coloured by label.

    Returns:
        The written path (600 x 500 px).
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or len(x) != len(labels) or len(x) < 2:
        raise MstarError(
            f"embeddings must be (N >= 2, D) with one label each, got {x.shape}, {len(labels)} labels"
        )
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed).fit_transform(x)
    else:
        raise MstarError(f"unknown projection '{method}'; use 'pca' or 'tsne'")
    fig = new_figure()
    ax = fig.add_subplot()
    labels_arr = np.asarray(labels)
    for lab in pd.unique(labels_arr):
        m = labels_arr == lab
        ax.scatter(xy[m, 0], xy[m, 1], s=12, alpha=0.8, label=str(lab))
    ax.set(xlabel=f"{method.upper()} 1", ylabel=f"{method.upper()} 2", title=title or "embeddings")
    ax.legend(fontsize=8, markerscale=1.5)
    return save_figure(fig, path)


def plot_paired_differences(metrics: dict[str, dict[str, Any]], path: str | os.PathLike,
                            title: str = "A - B") -> Path:
    """Forest plot of paired differences: one row per metric, the difference A - B with its 95 % CI, and
    the zero line (a row whose interval misses zero is drawn in colour: green when A is better).

    Args:
        metrics: ``{metric: {"difference": {"value", "ci_low", "ci_high"}, ...}}`` (as
            :func:`mstar.eval.compare.compare_runs` returns them).
        path: PNG to write (600 px wide, 60 px per metric).
        title: Axes title.

    Returns:
        The written path.
    """
    names = list(metrics)
    fig = new_figure(6.0, 1.5 + 0.6 * len(names))
    ax = fig.add_subplot()
    for row, name in enumerate(names):
        d = metrics[name]["difference"]
        value, low, high = (float(d[k]) for k in ("value", "ci_low", "ci_high"))
        color = "tab:green" if low > 0 else "tab:red" if high < 0 else "0.35"
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [row, row], color=color, linewidth=2)
        ax.plot([value], [row], marker="o", color=color)
    ax.axvline(0.0, color="0.6", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first metric on top
    ax.set(xlabel="A - B (point and 95 % CI)", title=title)
    fig.subplots_adjust(left=0.3)
    return save_figure(fig, path)
