"""The Lightning module every stage trains through: named loss terms in, one checked total out.

A stage subclasses :class:`RunModule` and implements :meth:`RunModule.losses` (``batch -> {"loss": total,
<term>: value, ...}``, the shape of open_clip's training tasks). The base class does what every stage needs
the same way:

- stops with one line when the total is NaN or infinite (:meth:`RunModule.nonfinite_message` says where);
- averages every term over the epoch (``train_<term>`` columns) and shows them on the progress bar;
- keeps ``history`` (one row per epoch), writes it to ``log.csv`` after every epoch (watch a long run with
  ``tail``), sends the numbers to the loggers (TensorBoard), and carries it inside Lightning checkpoints so
  a resumed run's log is complete.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch

from mstar.errors import MstarError


class RunModule(L.LightningModule):
    """Base of the stages' Lightning modules (see the module docstring)."""

    #: term -> name shown on the progress bar (terms not listed are shown under their own name)
    PROGRESS: ClassVar[dict[str, str]] = {}
    #: average the epoch's terms weighted by batch size (True) or per step (False)
    WEIGHT_BY_BATCH: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, Any]] = []
        self.log_path: Path | None = None
        self._sums: dict[str, float] = defaultdict(float)
        self._weight = 0.0
        self._epoch_start = time.perf_counter()

    # ---- what a stage supplies ----
    def losses(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"loss": total, <term>: value, ...}`` for one batch."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int:
        """Items in ``batch`` (for weighting and logging)."""
        if isinstance(batch, dict):
            first = next(v for v in batch.values() if isinstance(v, torch.Tensor))
            return int(first.shape[0])
        return int(batch[0].shape[0])

    def nonfinite_message(self, loss: torch.Tensor, batch: Any, batch_idx: int) -> str:
        """One line saying where the loss stopped being finite and what to try."""
        return (f"training loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                f"step {batch_idx + 1}; lower the learning rate and check the inputs for NaN/inf values")

    # ---- the shared step ----
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch, batch_idx)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise MstarError(self.nonfinite_message(loss, batch, batch_idx))
        n = self.batch_size(batch)
        weight = n if self.WEIGHT_BY_BATCH else 1
        for name, value in terms.items():
            self._sums[name] += float(value.detach()) * weight
        self._weight += weight
        self.log_dict({self.PROGRESS.get(k, k): v.detach() for k, v in terms.items()}, prog_bar=True,
                      batch_size=n)
        return loss

    def on_train_epoch_start(self) -> None:
        self._sums, self._weight = defaultdict(float), 0.0
        self._epoch_start = time.perf_counter()

    def train_means(self) -> dict[str, float]:
        """``{"train_<term>": epoch mean}`` of the terms seen since the epoch started (NaN when none)."""
        if not self._weight:
            return {}
        return {f"train_{k}": v / self._weight for k, v in self._sums.items()}

    def epoch_seconds(self) -> float:
        return time.perf_counter() - self._epoch_start

    # ---- the per-epoch record ----
    def record(self, row: dict[str, Any]) -> None:
        """Append an epoch's row to ``history``, rewrite ``log.csv`` and send its numbers to the loggers."""
        self.history.append(row)
        if self.log_path is not None and self.trainer.is_global_zero:
            write_log(self.log_path, self.history)
        numbers = {k: float(v) for k, v in row.items()
                   if isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))}
        for logger in self.loggers:
            logger.log_metrics({f"epoch/{k}": v for k, v in numbers.items()}, step=int(self.global_step))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mstar_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("mstar_history", []))


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """``log.csv``: one row per epoch, columns in first-seen order (atomic)."""
    import pandas as pd

    from mstar.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
