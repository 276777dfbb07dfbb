"""Task heads on top of a slide embedding: classification logits and discrete-time survival.

Both hold one Linear named ``fc``; :mod:`mstar.models.upstream` maps upstream's ``classifier``
(TransMIL) / ``classifier.0`` (ABMIL) onto it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.output import SurvivalOutput

TASKS = ("classification", "survival")


def survival_from_logits(logits: Tensor) -> SurvivalOutput:
    """Discrete-time survival from per-bin logits ``(B, T)`` (MCAT lineage).

    ``hazards = sigmoid(logits)``, ``S = cumprod(1 - hazards)``, ``risk = -sum(S)``.
    """
    hazards = torch.sigmoid(logits)  # (B, T)
    survival = torch.cumprod(1 - hazards, dim=1)  # (B, T)
    return SurvivalOutput(logits=logits, hazards=hazards, S=survival, risk=-survival.sum(dim=1))


class ClassificationHead(nn.Module):
    """``Linear(in_dim, n_classes)``: raw class scores (no softmax), as upstream.

    Args:
        in_dim: Embedding width.
        n_classes: Number of classes.
    """

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, n_classes)

    def forward(self, embedding: Tensor) -> Tensor:
        """``embedding`` ``(B, E)`` -> logits ``(B, C)``."""
        return self.fc(embedding)


class SurvivalHead(nn.Module):
    """``Linear(in_dim, n_bins)`` then hazards, survival function and risk (:func:`survival_from_logits`).

    Args:
        in_dim: Embedding width.
        n_bins: Number of discrete time bins (upstream 4).
    """

    def __init__(self, in_dim: int, n_bins: int = 4) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, n_bins)

    def forward(self, embedding: Tensor) -> SurvivalOutput:
        """``embedding`` ``(B, E)`` -> :class:`SurvivalOutput` with ``(B, T)`` tensors and risk ``(B,)``."""
        return survival_from_logits(self.fc(embedding))


def make_head(task: str, in_dim: int, n_classes: int) -> nn.Module:
    """The head for ``task`` (``classification`` or ``survival``).

    Raises:
        MstarError: For another task name.
    """
    if task == "classification":
        return ClassificationHead(in_dim, n_classes)
    if task == "survival":
        return SurvivalHead(in_dim, n_classes)
    raise MstarError(f"task={task!r} is not one of {TASKS}")
