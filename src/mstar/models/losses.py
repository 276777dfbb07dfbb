"""Survival losses of the slide-level and multimodal models.

NLLSurv: the negative log-likelihood of discrete-time survival (Zadeh & Schmid 2020; MCAT lineage, used by
mSTAR with ``alpha = 0``). For a patient in bin ``y`` with censorship ``c`` (1 = event NOT observed) and
``S_pad = [1, S(0), ..., S(T-1)]``::

    uncensored = -(1 - c) * (log S_pad[y] + log h[y])     survived to bin y, then the event in bin y
    censored   = -c * log S_pad[y + 1]                    survived past bin y
    loss       = mean((1 - alpha) * (censored + uncensored) + alpha * uncensored)

Probabilities are clamped at ``eps`` before the logarithm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mstar.errors import MstarError


def nll_surv_loss(hazards: Tensor, S: Tensor | None, y: Tensor, c: Tensor, alpha: float = 0.0,
                  eps: float = 1e-7) -> Tensor:
    """Discrete-time survival negative log-likelihood, averaged over the batch.

    Args:
        hazards: ``(B, T)`` per-bin hazards in (0, 1).
        S: ``(B, T)`` survival function ``cumprod(1 - hazards)``; computed when ``None``.
        y: ``(B,)`` integer time bin in ``0 .. T-1``.
        c: ``(B,)`` censorship, 1 = censored (no event observed), 0 = event.
        alpha: Extra weight on the uncensored term (upstream mSTAR uses 0).
        eps: Lower clamp of the probabilities before the logarithm.

    Returns:
        The scalar loss.

    Raises:
        MstarError: If a time bin is outside ``0 .. T-1``.
    """
    if S is None:
        S = torch.cumprod(1 - hazards, dim=1)  # (B, T)
    n_bins = hazards.shape[1]
    y = y.reshape(-1, 1).long()  # (B, 1)
    c = c.reshape(-1, 1).to(hazards.dtype)  # (B, 1)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_bins):
        raise MstarError(f"survival time bins must lie in 0..{n_bins - 1}; got {y.flatten().tolist()}")
    s_pad = torch.cat([torch.ones_like(c), S], dim=1)  # (B, T + 1)
    s_before = torch.gather(s_pad, 1, y).clamp(min=eps)  # (B, 1): S(y - 1), survived to bin y
    h_this = torch.gather(hazards, 1, y).clamp(min=eps)  # (B, 1)
    s_after = torch.gather(s_pad, 1, y + 1).clamp(min=eps)  # (B, 1): S(y), survived past bin y
    uncensored = -(1 - c) * (torch.log(s_before) + torch.log(h_this))  # (B, 1)
    censored = -c * torch.log(s_after)  # (B, 1)
    return ((1 - alpha) * (censored + uncensored) + alpha * uncensored).mean()


class NLLSurvLoss(nn.Module):
    """Module form of :func:`nll_surv_loss` (upstream ``define_loss('nll_surv')`` = alpha 0).

    Args:
        alpha: Extra weight on the uncensored term.
        eps: Lower clamp before the logarithm.
    """

    def __init__(self, alpha: float = 0.0, eps: float = 1e-7) -> None:
        super().__init__()
        self.alpha, self.eps = alpha, eps

    def forward(self, hazards: Tensor, S: Tensor | None, y: Tensor, c: Tensor) -> Tensor:
        """See :func:`nll_surv_loss`."""
        return nll_surv_loss(hazards, S, y, c, alpha=self.alpha, eps=self.eps)
