"""Gene-expression encoders: scBERT-style Performer (:class:`GeneEncoder`) and a self-normalising MLP.

``GeneEncoder`` (mSTAR's 0.94M "scBERT", method notes §1.4)::

    t_g  = bin_g(x_g) ∈ {1..n_bins}, 0 for missing genes   per-gene quantile bins fitted on the training table
    c_t  = Σ_{k≤t} δ_k − mean_t(·)                         ordinal ("thermometer") bin vectors, centred
    h_g  = E_gene[g] ⊙ c_{t_g}   (binding="product")       (B, G, dim); E_gene learned or Gene2Vec (frozen)
         = E_gene[g] + c_{t_g}   (binding="sum", scBERT)
    h    = Performer([CLS; h_1..h_G], key mask)            missing genes take no part in attention
    z    = proj_gene(LayerNorm(h_CLS))                     (B, proj_dim); pool="mean": masked mean instead

Why product binding by default: per-gene quantile bins give every profile about the same bin histogram, so
with a sum the [CLS]/mean read-out starts blind to *which* gene is high and must learn to bind identity to
level through attention; the product binds them in the token itself (docs/pretraining.md has the numbers).

``SNNGeneEncoder`` (MCAT/Porpoise's SNN): standardise each gene with training mean/std (missing → 0),
then Linear+ELU+AlphaDropout blocks and ``proj_gene``. Both take ``forward(values (B, G), mask (B, G))``
with ``mask`` True where a gene was measured, must be ``fit`` on the training table first, and keep the
vocabulary and config in the state dict (``_extra_state``) so ``from_state_dict`` rebuilds them exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from performer_pytorch import Performer
from performer_pytorch.performer_pytorch import FastAttention, linear_attention, softmax_kernel
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.blocks import snn_block


class _KeyMaskedFastAttention(FastAttention):
    """performer-pytorch's FAVOR+ attention with masked keys removed from the normaliser too.

    The library's mask only zeroes masked *values*, which still leaves masked keys in the softmax-kernel
    denominator; here their random features are zeroed as well, so they take no part at all.
    """

    key_mask: Tensor | None = None

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if self.key_mask is None or self.generalized_attention or self.no_projection or self.causal:
            return super().forward(q, k, v)
        qp = softmax_kernel(q, projection_matrix=self.projection_matrix, is_query=True, device=q.device)
        kp = softmax_kernel(k, projection_matrix=self.projection_matrix, is_query=False, device=q.device)
        kp = kp * self.key_mask[:, None, :, None].to(kp.dtype)  # (B, H, N, F)
        return linear_attention(qp, kp, v)


class _GeneModule(nn.Module):
    """Shared vocabulary/config bookkeeping and input checks."""

    def __init__(self, vocabulary: list[str], config: dict[str, Any]) -> None:
        super().__init__()
        self.vocabulary = [str(g) for g in vocabulary]
        if not self.vocabulary or len(set(self.vocabulary)) != len(self.vocabulary):
            raise MstarError("gene vocabulary must be a non-empty list of unique gene symbols")
        self.config = dict(config)
        self.register_buffer("fitted", torch.tensor(False))

    def get_extra_state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "config": self.config, "class": type(self).__name__}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if list(state["vocabulary"]) != self.vocabulary:
            raise MstarError("gene-encoder checkpoint was trained on another gene vocabulary; rebuild "
                             f"it with {type(self).__name__}.from_state_dict")

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any], prefix: str = "") -> _GeneModule:
        """Rebuild the encoder saved in ``state_dict`` (keys under ``prefix``) and load its weights."""
        extra = state_dict.get(f"{prefix}_extra_state")
        if extra is None:
            raise MstarError(f"state dict has no '{prefix}_extra_state'; it was not saved from a gene "
                             "encoder")
        model = cls(extra["vocabulary"], **extra["config"])
        model.load_state_dict({k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)})
        return model

    def _inputs(self, values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if values.ndim != 2 or values.shape[1] != len(self.vocabulary):
            raise MstarError(f"gene values must be (B, {len(self.vocabulary)}) in vocabulary order "
                             f"(see mstar.data.rna.match_genes); got {tuple(values.shape)}")
        if not bool(self.fitted):
            raise MstarError(f"{type(self).__name__} is not fitted; call .fit(train_values, train_mask) "
                             "first")
        mask = torch.ones_like(values, dtype=torch.bool) if mask is None else mask.bool()
        mask = mask & ~torch.isnan(values)
        return torch.where(mask, values, torch.zeros_like(values)).float(), mask


def _as_tensors(values: Any, mask: Any) -> tuple[Tensor, Tensor]:
    v = torch.as_tensor(np.asarray(values, dtype=np.float64))
    m = torch.ones_like(v, dtype=torch.bool) if mask is None else \
        torch.as_tensor(np.asarray(mask, dtype=bool))
    return v, m & ~torch.isnan(v)


class GeneEncoder(_GeneModule):
    """scBERT-style encoder: gene + expression-bin embeddings → Performer → CLS (or masked mean) → proj.

    Args:
        vocabulary: Gene symbols; inputs come in this order.
        proj_dim: Output width (512 upstream).
        dim, depth, heads, dim_head: Performer size (upstream guess: 200, 1, 10, 64).
        n_bins: Expression bins per gene (scBERT used 7 value tokens); bin 0 is "missing".
        pool: ``cls`` (a learned token prepended) or ``mean`` (masked mean over measured genes).
        binding: ``product`` (gene vector ⊙ bin vector) or ``sum`` (scBERT's gene + bin embedding).
        nb_features: FAVOR+ random features (None: ``dim_head · ln(dim_head)``).
        dropout: Feed-forward and attention dropout.
        gene_embeddings: ``(G, dim)`` initial gene vectors (``mstar.data.gene2vec.load_gene2vec``);
            None: random.
        freeze_gene_embeddings: Keep the gene vectors fixed (Gene2Vec, as upstream).
    """

    def __init__(self, vocabulary: list[str], proj_dim: int = 512, dim: int = 200, depth: int = 1,
                 heads: int = 10, dim_head: int = 64, n_bins: int = 7, pool: str = "cls",
                 binding: str = "product", nb_features: int | None = None, dropout: float = 0.0,
                 gene_embeddings: Tensor | None = None, freeze_gene_embeddings: bool = False) -> None:
        super().__init__(vocabulary, dict(
            proj_dim=proj_dim, dim=dim, depth=depth, heads=heads, dim_head=dim_head, n_bins=n_bins, pool=pool,
            binding=binding, nb_features=nb_features, dropout=dropout,
            freeze_gene_embeddings=freeze_gene_embeddings))
        if pool not in ("cls", "mean"):
            raise MstarError(f"gene encoder pool {pool!r} is unknown; use 'cls' or 'mean'")
        if binding not in ("product", "sum"):
            raise MstarError(f"gene encoder binding {binding!r} is unknown; use 'product' or 'sum'")
        if n_bins < 2:
            raise MstarError(f"gene encoder n_bins={n_bins}: use at least 2 bins")
        self.pool, self.n_bins, self.binding = pool, n_bins, binding
        self.gene_emb = nn.Embedding(len(self.vocabulary), dim)
        if gene_embeddings is not None:
            if tuple(gene_embeddings.shape) != (len(self.vocabulary), dim):
                raise MstarError(f"gene embeddings are {tuple(gene_embeddings.shape)}, expected "
                                 f"({len(self.vocabulary)}, {dim}); set dim to the Gene2Vec width")
            self.gene_emb.weight.data.copy_(gene_embeddings)
        self.gene_emb.weight.requires_grad_(not freeze_gene_embeddings)
        self.bin_emb = nn.Embedding(n_bins + 1, dim)
        self.register_buffer("bin_edges", torch.zeros(len(self.vocabulary), n_bins - 1))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if pool == "cls" else None
        self.performer = Performer(dim=dim, depth=depth, heads=heads, dim_head=dim_head,
                                   nb_features=nb_features, ff_dropout=dropout, attn_dropout=dropout)
        for module in self.performer.modules():
            if type(module) is FastAttention:
                module.__class__ = _KeyMaskedFastAttention
        self.norm = nn.LayerNorm(dim)
        self.proj_gene = nn.Linear(dim, proj_dim)

    @torch.no_grad()
    def fit(self, values: Any, mask: Any = None) -> GeneEncoder:
        """Per-gene quantile bin edges (at k/n_bins, k = 1..n_bins−1) from training ``(C, G)`` values."""
        v, m = _as_tensors(values, mask)
        qs = torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64)[1:-1]
        edges = torch.nanquantile(v.masked_fill(~m, float("nan")), qs, dim=0).T  # (G, n_bins-1)
        self.bin_edges.copy_(torch.nan_to_num(edges, nan=0.0))
        self.fitted.fill_(True)
        return self

    def bin_table(self) -> Tensor:
        """``(n_bins + 1, dim)`` bin vectors: row 0 "missing", rows 1.. centred cumulative (thermometer) sums.

        Centring over the value bins removes the part every profile shares (quantile bins give every profile
        about the same bin histogram), which shortens the initial plateau of training.
        """
        w = self.bin_emb.weight
        c = torch.cumsum(w[1:], dim=0)  # (n_bins, dim)
        return torch.cat([w[:1], c - c.mean(dim=0, keepdim=True)], dim=0)

    def tokens(self, values: Tensor, mask: Tensor | None = None) -> Tensor:
        """Bin ids ``(B, G)``: 1..n_bins for measured genes, 0 for missing ones."""
        values, mask = self._inputs(values, mask)
        edges = self.bin_edges.to(values.dtype)
        bins = torch.searchsorted(edges, values.T.contiguous(), right=True).T + 1  # (B, G)
        return torch.where(mask, bins, torch.zeros_like(bins))

    def forward(self, values: Tensor, mask: Tensor | None = None) -> Tensor:
        """Embed expression profiles ``(B, G)`` (mask True = measured) → ``(B, proj_dim)``."""
        tokens = self.tokens(values, mask)  # (B, G)
        mask = tokens > 0  # (B, G)
        bins = self.bin_table()[tokens]  # (B, G, dim)
        genes = self.gene_emb.weight[None]  # (1, G, dim)
        h = genes * bins if self.binding == "product" else genes + bins  # (B, G, dim)
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)  # (B, 1+G, dim)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # (B, 1+G)
        attn_mask = mask | ~mask.any(dim=1, keepdim=True)  # a row with nothing measured stays finite
        fast = [m for m in self.performer.modules() if isinstance(m, _KeyMaskedFastAttention)]
        for module in fast:
            module.key_mask = attn_mask
        try:
            h = self.norm(self.performer(h, mask=attn_mask))  # (B, N, dim)
        finally:
            for module in fast:
                module.key_mask = None
        if self.cls_token is not None:
            return self.proj_gene(h[:, 0])  # (B, proj_dim)
        weights = mask.to(h.dtype) / mask.sum(dim=1, keepdim=True).clamp_min(1)  # (B, G)
        return self.proj_gene(torch.einsum("bg,bgd->bd", weights, h))  # (B, proj_dim)


class SNNGeneEncoder(_GeneModule):
    """Self-normalising MLP on the standardised expression vector (MCAT/Porpoise's genomic branch).

    Args:
        vocabulary: Gene symbols; inputs come in this order.
        proj_dim: Output width.
        hidden: Widths of the Linear+ELU+AlphaDropout blocks.
        dropout: AlphaDropout rate (0.25 in MCAT).
    """

    def __init__(self, vocabulary: list[str], proj_dim: int = 512, hidden: tuple[int, ...] = (256, 256),
                 dropout: float = 0.25) -> None:
        super().__init__(vocabulary, dict(proj_dim=proj_dim, hidden=list(hidden), dropout=dropout))
        g = len(self.vocabulary)
        self.register_buffer("mean", torch.zeros(g))
        self.register_buffer("std", torch.ones(g))
        widths = [g, *hidden]
        self.net = nn.Sequential(*[snn_block(i, o, dropout) for i, o in zip(widths[:-1], widths[1:])])
        self.proj_gene = nn.Linear(widths[-1], proj_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):  # LeCun normal, as SNNs need
                nn.init.normal_(module.weight, 0.0, 1.0 / math.sqrt(module.weight.shape[1]))
                nn.init.zeros_(module.bias)

    @torch.no_grad()
    def fit(self, values: Any, mask: Any = None) -> SNNGeneEncoder:
        """Per-gene mean and std of the measured training values (std floored at 1e-6)."""
        v, m = _as_tensors(values, mask)
        n = m.sum(0).clamp_min(1)
        mean = torch.where(m, v, 0).sum(0) / n
        var = torch.where(m, (v - mean) ** 2, 0).sum(0) / n
        self.mean.copy_(mean)
        self.std.copy_(var.sqrt().clamp_min(1e-6))
        self.fitted.fill_(True)
        return self

    def forward(self, values: Tensor, mask: Tensor | None = None) -> Tensor:
        """Embed expression profiles ``(B, G)`` (mask True = measured) → ``(B, proj_dim)``."""
        values, mask = self._inputs(values, mask)
        x = torch.where(mask, (values - self.mean) / self.std, torch.zeros_like(values))  # (B, G)
        return self.proj_gene(self.net(x))  # (B, proj_dim)
