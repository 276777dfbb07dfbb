"""The small ABMIL recipe the whole-slide-mode and CPU-precision benchmarks train with (one place, so their
figures stay comparable): 3 seeds, 40 epochs, bootstrap CIs."""

from __future__ import annotations

from pathlib import Path

RECIPE = {"model": "abmil", "model_args": {"dim": 64, "attn_dim": 32}, "epochs": 40, "lr": 1e-3,
          "batch_size": 8, "runs": 3, "bootstrap": 1000}


def train(task: str, manifest: Path, features: str, out: Path, name: str, **overrides) -> str:
    """Train ``task`` with :data:`RECIPE` (plus ``overrides``, e.g. ``precision``); return the run folder."""
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    cfg = TrainConfig(task=task, manifest=str(manifest), features=features, out=str(out), name=name,
                      **{**RECIPE, **overrides})
    return train_task(cfg, progress=False)["run"]
