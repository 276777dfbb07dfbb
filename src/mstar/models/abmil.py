"""Attention-based MIL (Ilse, Tomczak & Welling, ICML 2018), laid out as upstream mSTAR's ``DAttention``.

A bag of patch features is embedded instance by instance, each instance gets an attention score, and the
bag embedding is the attention-weighted mean::

    h_i = Dropout(ReLU(W x_i + b))                      feature.0        (D -> 512)
    s_i = w^T tanh(V h_i)            (default)          attention.0, .2  (512 -> 128 -> 1)
    s_i = w^T (tanh(V h_i) * sigmoid(U h_i))  (gated)   attention.attention_a/b/c
    a   = softmax_i(s_i)  over the real patches of the bag
    z   = sum_i a_i h_i                                 -> SlideOutput.embedding (B, 512)

Upstream's classifier (``classifier.0``) is a separate head here (:mod:`mstar.models.heads`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mstar.models.blocks import GatedAttention, activation, all_real, check_bags
from mstar.models.dropout import FastDropout
from mstar.models.output import SlideOutput
from mstar.models.registry import register_model


class ABMIL(nn.Module):
    """Attention-MIL aggregator.

    Args:
        in_dim: Patch feature width ``D`` (1024 for UNI/mSTAR features).
        dim: Instance embedding width (upstream 512).
        attn_dim: Hidden width of the attention network (upstream 128).
        dropout: Dropout after the instance embedding (upstream 0.25); 0 for none.
        act: ``relu`` (upstream default) or ``gelu``.
        gated: Use the gated attention of Ilse et al. instead of upstream's plain tanh attention.

    Masking: padded patches (``mask`` False) are zeroed before the network, get attention exactly 0, and do
    not influence the embedding or the attention of real patches in any way (even if they hold NaN).
    """

    def __init__(self, in_dim: int = 1024, dim: int = 512, attn_dim: int = 128, dropout: float = 0.25,
                 act: str = "relu", gated: bool = False) -> None:
        super().__init__()
        self.in_dim, self.embed_dim, self.gated = in_dim, dim, gated
        drop = [FastDropout(dropout)] if dropout else []
        self.feature = nn.Sequential(nn.Linear(in_dim, dim), activation(act), *drop)
        if gated:
            self.attention: nn.Module = GatedAttention(dim, attn_dim, dropout=0.0, n_out=1)
        else:
            self.attention = nn.Sequential(nn.Linear(dim, attn_dim), nn.Tanh(), nn.Linear(attn_dim, 1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> SlideOutput:
        """Pool each bag into one vector.

        Args:
            x: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True for real patches; ``None`` means all real.

        Returns:
            ``SlideOutput(embedding (B, dim), tokens (B, N, dim) = instance embeddings (0 at padding),
            attention (B, N))``.
        """
        check_bags(x, mask, self.in_dim)
        mask = None if all_real(mask) else mask  # no padding: skip the masking copies below
        if mask is not None:
            x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))  # (B, N, D)
        h = self.feature(x)  # (B, N, dim)
        scores = self.attention(h).squeeze(-1)  # (B, N)
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)  # (B, N, dim)
            scores = scores.masked_fill(~mask, float("-inf"))  # (B, N)
        attn = torch.softmax(scores, dim=-1)  # (B, N)
        z = torch.bmm(attn.unsqueeze(1), h).squeeze(1)  # (B, dim)
        return SlideOutput(embedding=z, tokens=h, attention=attn)


@register_model("abmil", "Attention MIL (Ilse 2018), upstream DAttention layout: Linear-ReLU-Dropout, tanh "
                         "attention, weighted mean -> 512-d")
def abmil(**kwargs: Any) -> ABMIL:
    """ABMIL with upstream defaults (``in_dim=1024, dim=512, attn_dim=128, dropout=0.25``)."""
    return ABMIL(**kwargs)


@register_model("abmil_gated", "Gated-attention MIL (Ilse 2018): tanh * sigmoid attention branches -> 512-d")
def abmil_gated(**kwargs: Any) -> ABMIL:
    """ABMIL with the gated attention network."""
    return ABMIL(gated=True, **kwargs)
