"""Epoch selection on the validation split: best score, ties broken by lower validation loss.

Small validation sets saturate metrics such as AUC (1.0 from the second epoch on), and keeping the first
epoch that reaches the maximum selects an under-trained model with poorly calibrated probabilities. The
comparison is therefore lexicographic: a higher score wins; an equal score (within ``tol``) wins with a
lower loss. Early stopping counts epochs without such an improvement.
"""

from __future__ import annotations

import copy
import math

import lightning as L


class BestEpoch(L.Callback):
    """Keep the best weights (in memory) by (validation score, -validation loss); stop after ``patience``."""

    def __init__(self, patience: int, tol: float = 1e-9):
        self.patience, self.tol = patience, tol
        self.best_score, self.best_loss = -math.inf, math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.stale = 0

    def _better(self, score: float, loss: float) -> bool:
        if score > self.best_score + self.tol:
            return True
        return abs(score - self.best_score) <= self.tol and loss < self.best_loss

    def on_validation_end(self, trainer, pl_module):  # after the module logged this epoch's metrics
        if trainer.sanity_checking:
            return
        score = float(trainer.callback_metrics.get("val_score", -math.inf))
        loss = float(trainer.callback_metrics.get("val_loss", math.inf))
        if self._better(score, loss):
            self.best_score, self.best_loss = score, loss
            self.best_epoch = trainer.current_epoch + 1
            self.best_state = copy.deepcopy(pl_module.model.state_dict())
            self.stale = 0
        else:
            self.stale += 1
            if self.stale >= self.patience:
                trainer.should_stop = True
