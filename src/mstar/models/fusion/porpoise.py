"""Porpoise / PORPOISE "MMF" (Chen et al., Cancer Cell 2022), as upstream mSTAR's ``Porpoise(fusion='lrb')``.

For one case::

    h     = Linear-ReLU-Dropout(Dropout(0.1)(x))                 (N, 512)     attention_net.1
    a     = softmax(gated_attention(h))                          (N,)         attention_net.4
    z_p   = rho(sum_i a_i h_i)                                   (256,)
    z_o   = fc_omic(omic)                                        (256,)       two SNN blocks, full omic vector
    logits = LRBilinearFusion(z_p, z_o)                          (T,)

Low-rank bilinear fusion: each modality is gated (``o_m = linear_o_m(sigmoid(linear_z_m([z_p, z_o])) *
linear_h_m(z_m))``, 32-d), extended by a constant 1, projected by ``rank`` factor tensors ``(rank, 33, T)``;
the two projections are multiplied and combined over the rank by ``fusion_weights`` plus ``fusion_bias``.
Upstream uses that output directly as the logits; ``classifier_mm`` exists in the state_dict but is unused
(kept here so the upstream state_dict loads with ``strict=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.blocks import GatedAttention, all_real
from mstar.models.dropout import FastDropout
from mstar.models.fusion.common import (
    FusionOutput,
    OmicsInput,
    check_path,
    concat_omics,
    linear_relu_dropout,
    snn_stack,
)
from mstar.models.heads import survival_from_logits
from mstar.models.registry import register_model


class LRBilinearFusion(nn.Module):
    """Gated low-rank bilinear fusion of two vectors into ``out_dim`` outputs (upstream ``LRBilinearFusion``).

    Args:
        dim1, dim2: Input widths.
        scale_dim1, scale_dim2: Reduction of each gated branch (``dim // scale``).
        rank: Rank of the factorised bilinear map.
        out_dim: Outputs (the time bins).
        dropout: Dropout after each gated branch.
    """

    def __init__(self, dim1: int = 256, dim2: int = 256, scale_dim1: int = 8, scale_dim2: int = 8,
                 rank: int = 16, out_dim: int = 4, dropout: float = 0.25) -> None:
        super().__init__()
        h1, h2 = dim1 // scale_dim1, dim2 // scale_dim2
        self.linear_h1 = nn.Sequential(nn.Linear(dim1, h1), nn.ReLU())
        self.linear_z1 = nn.Sequential(nn.Linear(dim1 + dim2, h1))
        self.linear_o1 = nn.Sequential(nn.Linear(h1, h1), nn.ReLU(), nn.Dropout(dropout))
        self.linear_h2 = nn.Sequential(nn.Linear(dim2, h2), nn.ReLU())
        self.linear_z2 = nn.Sequential(nn.Linear(dim1 + dim2, h2))
        self.linear_o2 = nn.Sequential(nn.Linear(h2, h2), nn.ReLU(), nn.Dropout(dropout))
        self.h1_factor = nn.Parameter(torch.empty(rank, h1 + 1, out_dim))
        self.h2_factor = nn.Parameter(torch.empty(rank, h2 + 1, out_dim))
        self.fusion_weights = nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, out_dim))
        for p in (self.h1_factor, self.h2_factor, self.fusion_weights):
            nn.init.xavier_normal_(p)

    def forward(self, vec1: Tensor, vec2: Tensor) -> Tensor:
        """``vec1`` ``(B, dim1)``, ``vec2`` ``(B, dim2)`` -> ``(B, out_dim)``."""
        both = torch.cat([vec1, vec2], dim=1)  # (B, dim1 + dim2)
        o1 = self.linear_o1(torch.sigmoid(self.linear_z1(both)) * self.linear_h1(vec1))  # (B, h1)
        o2 = self.linear_o2(torch.sigmoid(self.linear_z2(both)) * self.linear_h2(vec2))  # (B, h2)
        one = o1.new_ones(o1.shape[0], 1)
        f1 = torch.matmul(torch.cat([one, o1], dim=1), self.h1_factor)  # (rank, B, out)
        f2 = torch.matmul(torch.cat([one, o2], dim=1), self.h2_factor)  # (rank, B, out)
        fused = torch.matmul(self.fusion_weights, (f1 * f2).permute(1, 0, 2)).squeeze(1)  # (B, out)
        return fused + self.fusion_bias


class Porpoise(nn.Module):
    """Gated-attention MIL + SNN + low-rank bilinear fusion (upstream ``Porpoise(fusion='lrb')``, "small").

    Args:
        path_dim: Patch feature width (1024).
        omic_dim: Width of the full omic vector (upstream ``omic_input_dim``).
        n_bins: Discrete time bins (4).
        dropout: Dropout of the MIL branch (0.25).
        dropinput: Dropout on the input patches (0.1).

    Omics: the full vector ``(B, omic_dim)``, or a list of groups that are concatenated in order.
    Masking: padded patches are zeroed and get attention exactly 0 (a padded bag gives its batch-of-one
    output).
    Attention: ``path`` ``(B, N)`` gated-attention scores before softmax (``-inf`` at padding).
    """

    def __init__(self, path_dim: int = 1024, omic_dim: int = 0, n_bins: int = 4, dropout: float = 0.25,
                 dropinput: float = 0.1) -> None:
        super().__init__()
        if omic_dim < 1:
            raise MstarError("porpoise needs omic_dim: the width of the full omic vector")
        self.path_dim, self.omic_dim, self.n_bins = path_dim, omic_dim, n_bins
        gated = GatedAttention(512, 256, dropout=dropout, n_out=1)
        self.attention_net = nn.Sequential(FastDropout(dropinput), nn.Linear(path_dim, 512), nn.ReLU(),
                                           FastDropout(dropout), gated)
        self.rho = linear_relu_dropout(512, 256, dropout)
        self.fc_omic = snn_stack(omic_dim, (256, 256))
        self.mm = LRBilinearFusion(256, 256, scale_dim1=8, scale_dim2=8, rank=16, out_dim=n_bins)
        self.classifier_mm = nn.Linear(256, n_bins)  # upstream: present, unused with fusion='lrb'

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = ()) -> FusionOutput:
        """Predict survival for a batch of cases.

        Args:
            x_path: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True = real patch; ``None`` = all real.
            omics: The omic vector ``(B, omic_dim)`` or groups concatenated to it.
        """
        x_path = check_path(x_path, mask, self.path_dim).to(self.rho[0].weight.dtype)
        x_omic = concat_omics(omics, self.omic_dim, x_path.shape[0], "Porpoise").to(x_path.dtype)
        h = self.attention_net[:-1](x_path)  # (B, N, 512)
        scores = self.attention_net[-1](h).squeeze(-1)  # (B, N)
        if not all_real(mask):
            scores = scores.masked_fill(~mask, float("-inf"))
        pooled = torch.bmm(torch.softmax(scores, dim=-1).unsqueeze(1), h).squeeze(1)  # (B, 512)
        z_path = self.rho(pooled)  # (B, 256)
        z_omic = self.fc_omic(x_omic)  # (B, 256)
        logits = self.mm(z_path, z_omic)  # (B, T)
        return FusionOutput(logits=logits, survival=survival_from_logits(logits), attention={"path": scores},
                            embeddings={"path": z_path, "omic": z_omic})


@register_model("porpoise", "Porpoise/PORPOISE (Chen 2022): gated-attention MIL + SNN on the full omic "
                            "vector + low-rank bilinear fusion")
def porpoise(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
             omic_dim: int | None = None, **kwargs: Any) -> Porpoise:
    """:class:`Porpoise`; the omic width is ``omic_dim`` or ``sum(omic_sizes)`` (groups concatenated)."""
    if omic_dim is None:
        omic_dim = sum(omic_sizes) if omic_sizes else 0
    return Porpoise(path_dim=path_dim, omic_dim=omic_dim, n_bins=n_bins, **kwargs)
