"""The Lightning module shared by every supervised slide-level task (an MILModel + an objective)."""

from __future__ import annotations

import math
import time

import lightning as L
import numpy as np
import pandas as pd
import torch

from mstar.models.mil import MILModel


def model_kwargs(extra: list) -> dict:
    """Extra model inputs of a batch: its 5th element (a dict such as ``{"omics": ...}``), if any."""
    return extra[0] if extra else {}


class SlideTaskModule(L.LightningModule):
    """Trains ``model`` with ``objective.loss``; scores each validation epoch with ``objective.score``.

    Args:
        model: aggregator + head.
        objective: a :mod:`mstar.tasks.objectives` objective.
        lr, weight_decay, epochs: Adam with cosine annealing over ``epochs`` (stepped per epoch), as upstream.
        slow_params: names (prefixes) of parameters trained at ``slow_lr`` (a pretrained aggregator).
        truth: per-case truth columns used to score validation predictions.
    """

    def __init__(self, model: MILModel, objective, lr: float, weight_decay: float, epochs: int,
                 truth: pd.DataFrame, slow_prefixes: tuple[str, ...] = (), slow_lr: float | None = None):
        super().__init__()
        self.model, self.objective = model, objective
        self.lr, self.weight_decay, self.epochs = lr, weight_decay, epochs
        self.truth = truth.set_index("case")
        self.slow_prefixes, self.slow_lr = slow_prefixes, slow_lr
        self._val_rows: list[pd.DataFrame] = []
        self.history: list[dict] = []
        self._train_losses: list[float] = []

    def forward(self, x, mask, **kwargs):
        return self.model(x, mask, **kwargs)

    def on_train_epoch_start(self):
        self._epoch_start = time.perf_counter()

    def training_step(self, batch, batch_idx):
        x, mask, target, _, *extra = batch
        loss = self.objective.loss(self.model(x, mask, **model_kwargs(extra)), target)
        if not torch.isfinite(loss):
            from mstar.errors import MstarError

            raise MstarError(f"training loss became {loss.item()} at epoch {self.current_epoch}; lower --lr or "
                             "check the features for NaN/inf values")
        self._train_losses.append(float(loss.detach()))
        self.log("train_loss", loss, batch_size=x.shape[0], prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask, target, cases, *extra = batch
        out = self.model(x, mask, **model_kwargs(extra))
        loss = self.objective.loss(out, target)
        rows = pd.DataFrame({"case": cases, **self.objective.outputs(out)})
        rows["loss"] = float(loss)  # batch mean, repeated on each of its rows
        self._val_rows.append(rows)

    def on_validation_epoch_end(self):
        if not self._val_rows:
            return
        preds = pd.concat(self._val_rows, ignore_index=True)
        self._val_rows = []
        preds = preds.join(self.truth, on="case")
        score = self.objective.score(preds)
        score = float(score) if np.isfinite(score) else -math.inf
        val_loss = float(preds["loss"].mean())  # mean over cases
        self.log("val_score", score, prog_bar=True)
        self.log("val_loss", val_loss)
        if not self.trainer.sanity_checking:
            train_loss = float(np.mean(self._train_losses)) if self._train_losses else float("nan")
            self._train_losses = []
            self.history.append({"epoch": self.current_epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                                 f"val_{self.objective.selection_metric}": score,
                                 "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
                                 "seconds": round(time.perf_counter() - getattr(self, "_epoch_start", time.perf_counter()), 3)})

    def configure_optimizers(self):
        slow, fast = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (slow if self.slow_prefixes and name.startswith(self.slow_prefixes) else fast).append(p)
        groups = [{"params": fast, "lr": self.lr}]
        if slow:
            groups.append({"params": slow, "lr": self.slow_lr or self.lr})
        optimizer = torch.optim.Adam(groups, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs, eta_min=0.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
