"""HistGen's report decoder: token embedding + memory responses, pre-norm Transformer decoder, logits.

    e = Embedding(tokens) * sqrt(d) + sinusoidal position        (dropout)
    e = e + CMN(e)                                                 the shared cross-modal memory
    e = num_layers x [causal self-attention, cross-attention to the region vectors, FFN(d_ff)]  (pre-norm)
    logits = Linear(LayerNorm(e))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mstar.models.report.encoder import sinusoidal_positions
from mstar.models.report.memory import CrossModalMemory
from mstar.models.report.vocab import PAD_ID


class ReportDecoder(nn.Module):
    """Transformer decoder over report tokens, conditioned on region vectors.

    Args:
        vocab_size: ``V``.
        d_model: Width (HistGen: 512).
        n_heads: Heads (8).
        d_ff: Feed-forward width (512).
        num_layers: Decoder layers (3).
        dropout: Dropout (0.1).
    """

    def __init__(self, vocab_size: int, d_model: int = 512, n_heads: int = 8, d_ff: int = 512,
                 num_layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        self.pos_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout, activation="relu", batch_first=True,
                                       norm_first=True)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.logit = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, regions: torch.Tensor, region_mask: torch.Tensor,
                memory: CrossModalMemory) -> torch.Tensor:
        """Next-token logits.

        Args:
            tokens: ``(B, T)`` decoder input (``<bos>`` first).
            regions: ``(B, R, d)`` region vectors.
            region_mask: ``(B, R)`` bool, True on real regions.
            memory: The shared cross-modal memory.

        Returns:
            ``(B, T, V)`` logits.
        """
        t = tokens.shape[1]
        e = self.embed(tokens) * math.sqrt(self.d_model)  # (B, T, d)
        e = self.pos_dropout(e + sinusoidal_positions(t, self.d_model, e.device))
        e = e + memory(e)  # (B, T, d)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=e.device), diagonal=1)  # (T, T)
        for layer in self.layers:
            e = layer(e, regions, tgt_mask=causal, memory_key_padding_mask=~region_mask,
                      tgt_is_causal=True)  # (B, T, d)
        return self.logit(self.norm(e))  # (B, T, V)
