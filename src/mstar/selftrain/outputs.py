"""Files of a finished stage-2 run: the encoder, its projection, the log, the figure, ``metrics.json`` (last).

``<out>/encoder/<name>.pth`` is a plain timm state_dict (``torch.save``), the same kind of file as the
released ``mSTAR.pth``; ``<name>.json`` beside it is the ``mstar.encoder/1`` sidecar, so both
``mstar extract --encoder <name> --checkpoint <out>/encoder/<name>.pth`` and (for a registered
architecture) ``--encoder mstar-vitl16 --checkpoint ...`` load it strictly. ``encoder/proj.pt`` holds the
student's projection in the stage-1 layout (``{'model_state_dict': {'proj.weight', 'proj.bias'}}``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.eval.results import point_entry, read_metrics_json, read_metrics_meta, write_metrics_json
from mstar.features.checkpoints import save_encoder_checkpoint
from mstar.run.checkpoint import save_checkpoint
from mstar.utils.atomic import atomic_path

SHOWN = (("val_cosine", "held-out cosine(student, target)"), ("knn_bacc", "k-NN balanced accuracy"),
         ("linear_bacc", "linear probe balanced accuracy"))
METRIC_NAMES = {"val_cosine": "cosine", "knn_bacc": "knn_balanced_accuracy",
                "linear_bacc": "linear_balanced_accuracy"}


def encoder_path(run: Path, name: str) -> Path:
    """Where the output encoder's weights go."""
    return run / "encoder" / f"{name}.pth"


def plot_validation(history: pd.DataFrame, path: Path) -> Path:
    """Validation curves per epoch (0 = initial encoder): cosine, probe accuracies, train loss terms."""
    from mstar.eval.plots import new_figure, save_figure

    fig = new_figure(12.0, 3.6)
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(history["epoch"], history["val_cosine"], marker="o")
    ax.set(xlabel="epoch", title="held-out cosine(student, target)")
    ax = fig.add_subplot(1, 3, 2)
    drawn = 0
    for col, label in (("knn_bacc", "k-NN"), ("linear_bacc", "linear")):
        if history[col].notna().any():
            ax.plot(history["epoch"], history[col], marker="o", label=label)
            drawn += 1
    ax.set(xlabel="epoch", title="patch-label probes (balanced acc.)", ylim=(0, 1.02))
    if drawn:
        ax.legend(fontsize=8)
    else:  # no patch labels given: say so instead of an empty legend (and matplotlib's warning)
        ax.text(0.5, 0.5, "no patch labels\n(--set patch_labels=CSV)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    ax = fig.add_subplot(1, 3, 3)
    trained = history[history["epoch"] > 0]
    for col in ("train_loss", "train_target", "train_ema"):
        ax.plot(trained["epoch"], trained[col], marker=".", label=col.removeprefix("train_"))
    ax.set(xlabel="epoch", title="training loss terms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_proj(student, path: Path) -> Path:
    """The student's projection as a stage-1-layout checkpoint."""
    state = {f"proj.{k}": v.detach().cpu().clone() for k, v in student.proj.state_dict().items()}
    return save_checkpoint(path, {"model_state_dict": state})


def _entries(row: dict, ci: dict, n: int) -> dict:
    out = {}
    for col, name in METRIC_NAMES.items():
        if name in ci:
            out[name] = ci[name]
        elif np.isfinite(row.get(col, np.nan)):
            out[name] = point_entry(row[col], n)
    return out


def write_outputs(run: Path, backbone, student, encoder, name: str, history: list[dict], initial_ci: dict,
                  final: dict, final_ci: dict, change: dict, meta: dict) -> dict:
    """Write encoder + sidecar, proj, ``log.csv``, the figure and ``metrics.json`` (written last).

    Args:
        backbone: the exported weights (student or EMA backbone).
        student: the student (its ``proj`` is saved).
        encoder: the registry entry of the architecture (timm name, kwargs, preprocessing).
        history: one row per epoch, epoch 0 first.
        initial_ci, final_ci: bootstrap entries of the initial and exported encoders.
        final: the exported encoder's metric values.
        change: final minus initial with paired bootstrap CIs (same held-out patches).
    """
    weights = save_encoder_checkpoint(backbone, encoder_path(run, name), name=name,
                                      timm_model=encoder.timm_model, timm_kwargs=encoder.timm_kwargs,
                                      preprocess=encoder.preprocess,
                                      parent=meta.get("parent"))
    save_proj(student, run / "encoder" / "proj.pt")
    frame = pd.DataFrame(history)
    with atomic_path(run / "log.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    (run / "figures").mkdir(exist_ok=True)
    plot_validation(frame, run / "figures" / "validation_curves.png")
    n = int(meta.get("val_patches", 0))
    metrics = {"initial": _entries(history[0], initial_ci, n), "final": _entries(final, final_ci, n)}
    if change:
        metrics["change"] = change
    meta = {**meta, "encoder": str(weights), "sidecar": str(weights.with_suffix(".json")),
            "note": "held-out slides; 'initial' = the encoder before stage 2 (epoch 0), 'final' = the "
                    "exported weights; 'change' = final - initial on the same patches (paired resamples); "
                    "95% percentile bootstrap CIs over held-out patches"}
    write_metrics_json(run / "metrics.json", metrics, meta=json.loads(json.dumps(meta, default=str)))
    return {"run": str(run), "encoder": str(weights), "metrics": metrics, "meta": meta}


def finished_result(run: Path) -> dict:
    """The result of an already finished run (nothing is retrained)."""
    meta = read_metrics_meta(run / "metrics.json")
    return {"run": str(run), "encoder": meta.get("encoder"),
            "metrics": read_metrics_json(run / "metrics.json"), "meta": meta}
