"""HistGen's cross-modal context module (after R2GenCMN): a shared memory queried by both modalities.

A learnable memory matrix ``(cmm_size, cmm_dim)`` is read by multi-head attention in which each query
keeps only its ``topk`` best-scoring memory slots (softmax over the selected slots; the others get zero
weight). Visual side: ``prototype_num`` evenly spaced patches of each bag query the memory, and every
patch then attends to those responses (a residual update before the hierarchical encoder). Textual side:
the decoder's token embeddings query the same memory and the responses are added to them.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CrossModalMemory(nn.Module):
    """Multi-head top-k attention from queries to a learnable memory matrix.

    Args:
        d_model: Query/response width.
        n_heads: Attention heads.
        cmm_size: Memory slots (HistGen: 2048).
        cmm_dim: Slot width (HistGen: 512 = ``d_model``).
        topk: Slots kept per query and head (HistGen: 512 in the mSTAR run).
        dropout: Dropout on the attention weights.
    """

    def __init__(self, d_model: int = 512, n_heads: int = 8, cmm_size: int = 2048, cmm_dim: int = 512,
                 topk: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.d_head, self.topk = n_heads, d_model // n_heads, topk
        self.memory = nn.Parameter(torch.empty(cmm_size, cmm_dim))
        nn.init.normal_(self.memory, 0.0, 1.0 / cmm_dim)
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(cmm_dim, d_model)
        self.v_proj = nn.Linear(cmm_dim, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """Memory responses to ``query`` ``(B, L, d_model)`` → ``(B, L, d_model)``."""
        b, length, _ = query.shape
        h, dh = self.n_heads, self.d_head
        q = self.q_proj(query).view(b, length, h, dh).transpose(1, 2)  # (B, h, L, dh)
        k = self.k_proj(self.memory).view(-1, h, dh).transpose(0, 1)  # (h, S, dh)
        v = self.v_proj(self.memory).view(-1, h, dh).transpose(0, 1)  # (h, S, dh)
        scores = torch.einsum("bhld,hsd->bhls", q, k) / math.sqrt(dh)  # (B, h, L, S)
        k_keep = min(self.topk, scores.shape[-1])
        if k_keep < scores.shape[-1]:
            idx = scores.topk(k_keep, dim=-1).indices  # (B, h, L, k)
            keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = self.dropout(scores.softmax(dim=-1))  # (B, h, L, S), zero outside the top k
        out = torch.einsum("bhls,hsd->bhld", weights, v)  # (B, h, L, dh)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, h * dh))  # (B, L, d_model)


def prototype_indices(lengths: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` evenly spaced patch indices per bag (HistGen: ``linspace(0, n - 1, k).long()``).

    Args:
        lengths: ``(B,)`` number of valid patches per bag (≥ 1).
        k: Prototypes per bag; indices repeat when a bag has fewer than ``k`` patches.

    Returns:
        ``(B, k)`` long indices into each bag's valid patches.
    """
    steps = torch.linspace(0.0, 1.0, k, device=lengths.device, dtype=torch.float64)  # (k,)
    return (steps[None, :] * (lengths[:, None].to(torch.float64) - 1)).long()  # (B, k)


class VisualMemoryContext(nn.Module):
    """Patch features enriched by memory responses to their evenly spaced prototypes (HistGen's visual CMN).

    Args:
        d_model: Feature width.
        n_heads: Heads of the patch → response attention.
        prototype_num: Prototypes per bag (HistGen: 512).
        dropout: Attention dropout.
    """

    def __init__(self, d_model: int = 512, n_heads: int = 8, prototype_num: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.prototype_num = prototype_num
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: CrossModalMemory) -> torch.Tensor:
        """``x + Attn(x, R, R)`` with ``R`` = memory responses of the prototypes; ``x``: ``(B, N, d)``."""
        idx = prototype_indices(mask.sum(dim=1).clamp(min=1), self.prototype_num)  # (B, K)
        prototypes = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))  # (B, K, d)
        responses = memory(prototypes)  # (B, K, d)
        update, _ = self.attn(x, responses, responses, need_weights=False)  # (B, N, d)
        return x + update
