"""HistGen's slide side: WSI mapping, memory context, and the local-global hierarchical encoder (HAT).

Per bag (patches first, padding last; ``mask`` True on real patches):

    x = ReLU(Linear(d_vf → d)(wsi_mapping(feats)))        wsi_mapping: Linear(in_dim → d_vf); dropout 0.5
    x = x + Attn(x, CMN(prototypes), ·)                   memory.VisualMemoryContext
    regions of region_size - 1 patches + 1 learned global token each (the last region zero-padded)
    layer 0: region Transformer (within each region)  →  WSI Transformer over the regions' global tokens
    layer 1: region Transformer
    LayerNorm → masked attentive pooling per region → Linear + tanh  →  one vector per region

A sinusoidal position (within the region, and of the region in the slide) is added before each region
/ WSI Transformer, as upstream. The region vectors and a region mask are the decoder's memory; a region
without real patches is masked out (its global token stays attendable inside its own region so that no
attention row is empty). A bag shorter than a region is one zero-padded region.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mstar.models.report.memory import CrossModalMemory, VisualMemoryContext


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``(n, dim)`` sine/cosine position table (Vaswani et al.)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]  # (n, 1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table


def _layer(d_model: int, n_heads: int, d_ff: int, dropout: float) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, activation="relu", batch_first=True,
                                      norm_first=True)


class HierarchicalEncoder(nn.Module):
    """Local (within regions) then global (across regions) Transformer with attentive region pooling.

    Args:
        d_model: Width.
        n_heads: Attention heads.
        d_ff: Feed-forward width.
        region_size: Tokens per region, the global token included (HistGen/mSTAR: 96).
        num_layers: Region layers; the WSI (across-region) layer follows the first (HistGen: 2).
        dropout: Dropout.
    """

    def __init__(self, d_model: int = 512, n_heads: int = 8, d_ff: int = 512, region_size: int = 96,
                 num_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        if region_size < 2:
            raise ValueError("region_size must be ≥ 2 (patches + the global token)")
        self.region_size = region_size
        self.global_token = nn.Parameter(torch.randn(1, 1, 1, d_model) * 0.02)
        self.region_layers = nn.ModuleList(_layer(d_model, n_heads, d_ff, dropout) for _ in range(num_layers))
        self.wsi_layer = _layer(d_model, n_heads, d_ff, dropout)
        self.pos_dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.pool_proj = nn.Linear(d_model, d_model)
        self.pool_score = nn.Linear(d_model, 1, bias=False)
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Region vectors of left-aligned bags.

        Args:
            x: ``(B, N, d)`` patch tokens.
            mask: ``(B, N)`` bool, True on real patches (padding at the end).

        Returns:
            ``(B, R, d)`` region vectors and ``(B, R)`` bool region mask, ``R = ceil(N / (region_size - 1))``.
        """
        b, n, d = x.shape
        per = self.region_size - 1
        r = max(1, math.ceil(n / per))
        x = torch.cat([x, x.new_zeros(b, r * per - n, d)], dim=1).view(b, r, per, d)  # (B, R, P, d)
        mask = torch.cat([mask, mask.new_zeros(b, r * per - n)], dim=1).view(b, r, per)  # (B, R, P)
        x = torch.cat([x, self.global_token.expand(b, r, 1, d)], dim=2)  # (B, R, S, d)
        tokens_ok = torch.cat([mask, mask.new_ones(b, r, 1)], dim=2)  # (B, R, S)
        region_ok = mask.any(dim=2)  # (B, R)
        s = per + 1
        pos_tok = sinusoidal_positions(s, d, x.device)  # (S, d)
        pos_reg = sinusoidal_positions(r, d, x.device)  # (R, d)
        for i, layer in enumerate(self.region_layers):
            h = self.pos_dropout(x.reshape(b * r, s, d) + pos_tok)  # (B*R, S, d)
            x = layer(h, src_key_padding_mask=~tokens_ok.reshape(b * r, s)).view(b, r, s, d)
            if i == 0:  # across regions: the global tokens exchange slide context
                g = self.pos_dropout(x[:, :, -1] + pos_reg)  # (B, R, d)
                g = self.wsi_layer(g, src_key_padding_mask=~region_ok)  # (B, R, d)
                x = torch.cat([x[:, :, :-1], g[:, :, None]], dim=2)  # (B, R, S, d)
        x = self.norm(x)
        score = torch.tanh(self.pool_score(self.pool_proj(x))).squeeze(-1)  # (B, R, S)
        weights = score.masked_fill(~tokens_ok, float("-inf")).softmax(dim=-1)  # (B, R, S)
        pooled = torch.einsum("brs,brsd->brd", weights, x)  # (B, R, d)
        return torch.tanh(self.dense(pooled)), region_ok


class SlideEncoder(nn.Module):
    """Patch features → region vectors (the decoder's memory), as HistGen's visual branch.

    Args:
        in_dim: Patch feature width.
        d_vf: Width of the WSI mapping (HistGen: 2048; 512 to reuse a stage-1 ``proj``).
        d_model: Model width.
        n_heads: Attention heads.
        d_ff: Feed-forward width.
        region_size: Tokens per region, global token included.
        encoder_layers: Region layers.
        prototype_num: Prototypes per bag for the memory context.
        dropout: Transformer dropout.
        drop_prob_lm: Dropout after the feature embedding (HistGen: 0.5).
    """

    def __init__(self, in_dim: int = 1024, d_vf: int = 2048, d_model: int = 512, n_heads: int = 8,
                 d_ff: int = 512, region_size: int = 96, encoder_layers: int = 2, prototype_num: int = 512,
                 dropout: float = 0.1, drop_prob_lm: float = 0.5) -> None:
        super().__init__()
        self.wsi_mapping = nn.Linear(in_dim, d_vf)
        self.att_embed = nn.Sequential(nn.Linear(d_vf, d_model), nn.ReLU(), nn.Dropout(drop_prob_lm))
        self.context = VisualMemoryContext(d_model, n_heads, prototype_num, dropout)
        self.hat = HierarchicalEncoder(d_model, n_heads, d_ff, region_size, encoder_layers, dropout)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor,
                memory: CrossModalMemory) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, in_dim)`` left-aligned bags → ``(B, R, d)`` region vectors and ``(B, R)`` mask."""
        x = self.att_embed(self.wsi_mapping(feats))  # (B, N, d)
        x = x * mask[..., None]  # padding stays exactly zero
        x = self.context(x, mask, memory)  # (B, N, d)
        return self.hat(x, mask)
