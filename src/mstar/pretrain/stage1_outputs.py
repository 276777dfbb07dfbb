"""Files of a finished stage-1 run: ``stage1.pt``, ``log.csv``, figures, and ``metrics.json`` (written
last)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.eval.results import read_metrics_json, read_metrics_meta, write_metrics_json
from mstar.utils.atomic import atomic_path

RETRIEVAL_SHOWN = ("slide_to_report", "report_to_slide", "slide_to_gene", "gene_to_slide", "report_to_gene",
                   "gene_to_report")


def plot_retrieval(metrics: dict, path: Path, ks=(1, 5, 10)) -> Path | None:
    """Grouped bars of Recall@K per direction with CI whiskers and the chance level as a tick."""
    from mstar.eval.plots import new_figure, save_figure

    shown = [d for d in RETRIEVAL_SHOWN if f"{d}/recall@1" in metrics]
    if not shown:
        return None
    fig = new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(ks)
    for j, k in enumerate(ks):
        entries = [metrics[f"{d}/recall@{k}"] for d in shown]
        x = np.arange(len(shown)) + (j - (len(ks) - 1) / 2) * width
        vals = np.array([e["value"] for e in entries])
        lo = np.nan_to_num(vals - np.array([e["ci_low"] for e in entries]))
        hi = np.nan_to_num(np.array([e["ci_high"] for e in entries]) - vals)
        ax.bar(x, vals, width, yerr=[lo, hi], capsize=2, label=f"R@{k}")
        ax.scatter(x, [e["chance"] for e in entries], marker="_", s=200, c="black", zorder=3,
                   label="chance" if j == 0 else None)
    ax.set_xticks(np.arange(len(shown)), [d.replace("_to_", " → ") for d in shown], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="recall (held-out)", title="cross-modal retrieval")
    ax.legend(fontsize=8, ncol=4)
    return save_figure(fig, path)


def write_figures(run: Path, history: pd.DataFrame, metrics: dict, emb: dict | None,
                  labels: list[str]) -> None:
    """``training_curves.png``, ``retrieval.png`` and ``<modality>_embeddings.png`` (PCA of held-out
    items)."""
    from mstar.eval.plots import plot_embeddings_2d, plot_training_curves

    figures = run / "figures"
    figures.mkdir(exist_ok=True)
    curves = history.drop(columns=[c for c in history.columns if c.endswith(("/map", "@5", "@10")) or
                                   c in ("seconds",) or c.endswith("_silhouette")])
    if len(curves.columns) > 1:
        plot_training_curves(curves, figures / "training_curves.png")
    plot_retrieval(metrics, figures / "retrieval.png")
    if emb is None or len(labels) < 2:
        return
    labels = np.asarray(labels)
    for m in ("slide", "report", "gene"):  # one PCA per modality the held-out items have
        rows = emb.get(f"has_{m}", np.ones(len(labels), bool))
        if rows.sum() >= 2:
            z = emb[m][rows]
            plot_embeddings_2d(z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12), list(labels[rows]),
                               figures / f"{m}_embeddings.png",
                               title=f"held-out {m} embeddings (PCA), by cancer type")


def write_outputs(run: Path, model, history: list[dict], final: dict, emb: dict | None, val_items,
                  classes: list[str], meta: dict) -> dict:
    """Write the final checkpoint, log, figures and metrics (last: it marks the run finished)."""
    from mstar.pretrain.stage1_model import save_stage1

    ckpt = save_stage1(run / "checkpoints" / "stage1.pt", model, meta)
    frame = pd.DataFrame(history)
    with atomic_path(run / "log.csv") as tmp:
        frame.to_csv(tmp, index=False)
    labels = [classes[i] for i in val_items.labels] if emb is not None else []
    write_figures(run, frame, final, emb, labels)
    metrics = {"val": final} if final else {}
    meta = {**meta, "note": "held-out (val) slides of the final model; 'chance' = expected under random "
                            "ranking (retrieval) or the majority-class rate (k-NN)",
            "checkpoint": str(ckpt)}
    write_metrics_json(run / "metrics.json", metrics, meta=json.loads(json.dumps(meta, default=str)))
    return {"run": str(run), "checkpoint": str(ckpt), "metrics": metrics, "meta": meta}


def finished_result(run: Path) -> dict:
    """The result of an already finished run (nothing is retrained)."""
    metrics = read_metrics_json(run / "metrics.json")
    meta = read_metrics_meta(run / "metrics.json")
    return {"run": str(run), "checkpoint": str(run / "checkpoints" / "stage1.pt"), "metrics": metrics,
            "meta": meta}
