"""The EMA copy of the student's backbone and its momentum schedule (the anti-forgetting anchor).

``xi <- m * xi + (1 - m) * theta`` after every optimiser step, with ``m`` following a half cosine from
``start`` (0.996) to ``end`` (1.0) over training, as in BYOL/DINO: early on the anchor follows the student
a little, at the end it is frozen. Buffers are copied as they are.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn


def cosine_momentum(step: int, total: int, start: float = 0.996, end: float = 1.0) -> float:
    """Momentum at optimiser step ``step`` of ``total``:
    ``end - (end - start) (cos(pi step / total) + 1) / 2``."""
    if total <= 0:
        return end
    t = min(max(step / total, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * t) + 1) / 2


class EMA(nn.Module):
    """A frozen, eval-mode copy of ``model`` updated by exponential moving average."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        if hasattr(self.model, "set_grad_checkpointing"):
            self.model.set_grad_checkpointing(False)  # never back-propagated

    def train(self, mode: bool = True) -> EMA:
        super().train(mode)
        self.model.eval()  # always eval: the anchor is a fixed function between updates
        return self

    @torch.no_grad()
    def update(self, model: nn.Module, momentum: float) -> None:
        """Move every parameter towards ``model``'s by ``1 - momentum``; copy buffers."""
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - momentum)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
