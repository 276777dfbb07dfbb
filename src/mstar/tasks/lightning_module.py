"""The module of every supervised slide-level task: an MILModel trained with an objective's loss."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from mstar.models.mil import MILModel
from mstar.run.module import RunModule


class BagBatch(NamedTuple):
    """A padded batch of bags: ``x`` (B, N, D), ``mask`` (B, N), targets, case ids and extra model inputs
    (e.g. ``{"omics": ...}`` for multimodal models)."""

    x: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    cases: list[str]
    inputs: dict


def as_batch(batch) -> BagBatch:
    """A collated tuple ``(x, mask, target, cases[, inputs])`` as a :class:`BagBatch`."""
    x, mask, target, cases, *extra = batch
    return BagBatch(x, mask, target, cases, extra[0] if extra else {})


class SlideTaskModule(RunModule):
    """Trains ``model`` with ``objective.loss``; scores each validation epoch with ``objective.score``.

    Args:
        model: aggregator + head.
        objective: a :mod:`mstar.tasks.objectives` objective.
        lr, weight_decay, epochs: Adam with cosine annealing over ``epochs`` (stepped per epoch), as upstream.
        truth: per-case truth columns used to score validation predictions.
        slow_prefixes: names (prefixes) of parameters trained at ``slow_lr`` (a pretrained aggregator).
    """

    PROGRESS = {"loss": "train_loss"}

    def __init__(self, model: MILModel, objective, lr: float, weight_decay: float, epochs: int,
                 truth: pd.DataFrame, slow_prefixes: tuple[str, ...] = (), slow_lr: float | None = None):
        super().__init__()
        self.model, self.objective = model, objective
        self.lr, self.weight_decay, self.epochs = lr, weight_decay, epochs
        self.truth = truth.set_index("case")
        self.slow_prefixes, self.slow_lr = slow_prefixes, slow_lr
        self._val_rows: list[pd.DataFrame] = []

    def forward(self, x, mask, **kwargs):
        return self.model(x, mask, **kwargs)

    def losses(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        b = as_batch(batch)
        return {"loss": self.objective.loss(self.model(b.x, b.mask, **b.inputs), b.target)}

    def nonfinite_message(self, loss, batch, batch_idx: int) -> str:
        return (f"training loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                f"step {batch_idx + 1}; lower --lr or check the features for NaN/inf values")

    def validation_step(self, batch, batch_idx):
        b = as_batch(batch)
        out = self.model(b.x, b.mask, **b.inputs)
        loss = self.objective.loss(out, b.target)
        rows = pd.DataFrame({"case": b.cases, **self.objective.outputs(out)})
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
        if not self.trainer.sanity_checking:
            train = self.train_means().get("train_loss", float("nan"))
            self.record({"epoch": self.current_epoch + 1, "train_loss": train, "val_loss": val_loss,
                         f"val_{self.objective.selection_metric}": score,
                         "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
                         "seconds": round(self.epoch_seconds(), 3)})

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
