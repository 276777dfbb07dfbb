"""The callbacks of the harness: an atomic resume point per epoch, best-epoch selection, the progress bar.

The first two subclass Lightning's :class:`~lightning.pytorch.callbacks.Checkpoint`, so Lightning runs their
``on_train_epoch_end`` *after* the module's: the epoch's validation and its ``history`` row exist by then.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, RichProgressBar

from mstar.utils.atomic import atomic_path


class EpochCheckpoint(Checkpoint):
    """Writes ``path`` (a Lightning checkpoint: weights, optimiser, schedule, ``history``) after every epoch,
    or, with ``every_s``, after the first epoch ending at least that many seconds after the last write (and
    always after the last epoch): runs of many short epochs then do not spend their time writing it.

    Every rank takes part in saving (DDP strategies gather state); rank 0 writes through
    :func:`~mstar.utils.atomic.atomic_path`, so a killed run never leaves a truncated resume point.
    """

    def __init__(self, path: Path, every_s: float = 0.0) -> None:
        self.path, self.every_s = Path(path), float(every_s)
        self._last = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last_epoch = trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        due = last_epoch or time.monotonic() - self._last >= self.every_s
        if not trainer.strategy.broadcast(due):  # rank 0's clock decides for every rank
            return
        self._last = time.monotonic()
        # only rank 0 writes the file (Lightning's strategies), but every rank takes part in saving
        with (atomic_path(self.path) if trainer.is_global_zero
              else contextlib.nullcontext(self.path)) as target:
            trainer.save_checkpoint(target)
        trainer.strategy.barrier("mstar-epoch-checkpoint")


class BestEpoch(Checkpoint):
    """Keeps the weights of the best validated epoch (in memory) and stops after ``patience`` epochs without
    improvement.

    The score is read from the epoch's ``history`` row (``score_key``); epochs whose row lacks it were not
    validated and are skipped. Selection uses validation only.

    Args:
        score_key: Row key of the validation score (higher is better).
        patience: Epochs without improvement before stopping (None: never stop early).
        tie: How an equal score (within ``tol``) is decided: ``"loss"`` (lower ``loss_key`` wins; small
            validation sets saturate AUC, and the first epoch reaching the maximum is under-trained) or
            ``"later"`` (the later epoch wins, as HistGen).
        loss_key: Row key of the validation loss (``tie="loss"``).
        tol: Scores closer than this are equal.
    """

    def __init__(self, score_key: str, patience: int | None = None, tie: str = "loss",
                 loss_key: str = "val_loss", tol: float = 1e-9) -> None:
        self.score_key, self.patience, self.tie, self.loss_key, self.tol = (
            score_key, patience, tie, loss_key, tol)
        self.best_score, self.best_loss = -math.inf, math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.stale = 0

    def state_dict(self) -> dict:
        """Carried in the epoch checkpoint, so a resumed run keeps the best epoch found before it stopped."""
        return {"best_score": self.best_score, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                "best_state": self.best_state, "stale": self.stale}

    def load_state_dict(self, state_dict: dict) -> None:
        for key in ("best_score", "best_loss", "best_epoch", "best_state", "stale"):
            if key in state_dict:
                setattr(self, key, state_dict[key])

    def _better(self, score: float, loss: float) -> bool:
        if score > self.best_score + self.tol:
            return True
        tied = abs(score - self.best_score) <= self.tol  # False for two infinite scores (NaN difference)
        return tied and (self.tie == "later" or loss < self.best_loss)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = pl_module.history[-1] if pl_module.history else {}
        if row.get("epoch") != trainer.current_epoch + 1 or self.score_key not in row:
            return
        score = float(row[self.score_key])
        score = score if math.isfinite(score) else -math.inf
        loss = float(row.get(self.loss_key, math.inf))
        if self._better(score, loss):
            self.best_score, self.best_loss = score, loss
            self.best_epoch = int(row["epoch"])
            self.best_state = copy.deepcopy(pl_module.model.state_dict())
            self.stale = 0
        else:
            self.stale += 1
            if self.patience is not None and self.stale >= self.patience:
                trainer.should_stop = True


class EpochBar(RichProgressBar):
    """Lightning's rich progress bar counting epochs from 1, as ``log.csv`` and mstar's own lines do
    ("Epoch 3/40" in the 3rd of 40 epochs; Lightning's own shows "Epoch 2/39")."""

    def _get_train_description(self, current_epoch: int) -> str:  # Lightning's hook for the label
        total = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{total}" if total is not None and total > 0 else "")
        return f"{text:{len(self.validation_description)}}"  # as wide as "Validation" (no flicker)
