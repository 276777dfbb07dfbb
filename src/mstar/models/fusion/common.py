"""Pieces shared by the multimodal survival models: the output type, input checks, SNN signature encoders,
the upstream-style multi-head attention, the post-norm transformer encoder, gated-attention pooling and the
genomic-guided trunk that MCAT and MOTCat both build on.

Parameter names follow the upstream modules so upstream state_dicts load unchanged:

- ``MultiheadAttention``: ``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E), ``out_proj`` (E -> E), as in
  ``torch.nn.MultiheadAttention`` and the custom copies in MCAT/CMTA;
- ``TransformerEncoder``: ``layers.{j}.self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2`` (torch
  naming);
- signature networks: ``{i}.{k}.0`` = the Linear of SNN block ``k`` of group ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.blocks import GatedAttention, all_real, check_bags, snn_block
from mstar.models.dropout import FastDropout
from mstar.models.losses import nll_surv_loss
from mstar.models.output import SurvivalOutput

OmicsInput = Sequence[Tensor] | Tensor


@dataclass
class FusionOutput:
    """What every multimodal survival model returns for a batch of ``B`` cases.

    Attributes:
        logits: Per-bin scores ``(B, T)``. For a MOTCat bag split into chunks, the mean of its chunk logits.
        survival: ``hazards``, ``S`` ``(B, T)`` and ``risk`` ``(B,)``. For a chunked MOTCat bag: the chunk
            means of hazards and S, and ``risk = -sum(mean S)`` = the mean chunk risk (upstream's averaged
            risk).
        aux_loss: Extra training loss already weighted, or ``None`` (CMTA: L1(P_hat, P.detach()) +
            L1(G_hat, G.detach()), weight 1 each, as upstream).
        attention: Named attention scores (see each model); pre-softmax unless documented otherwise.
        embeddings: Named intermediate vectors ``(B, E)`` (CMTA: ``P``, ``P_hat``, ``G``, ``G_hat``).
        chunks: MOTCat only, when a bag of the batch was split into chunks: one :class:`SurvivalOutput` per
            bag whose tensors have one row per chunk (a bag that was not split has one row). ``None``
            otherwise.
    """

    logits: Tensor
    survival: SurvivalOutput
    aux_loss: Tensor | None = None
    attention: dict[str, Tensor] = field(default_factory=dict)
    embeddings: dict[str, Tensor] = field(default_factory=dict)
    chunks: list[SurvivalOutput] | None = None

    @property
    def y_hat(self) -> Tensor:
        """``(B, 1)`` int64: the bin with the largest logit (upstream ``Y_hat = topk(logits, 1)[1]``)."""
        return torch.topk(self.logits, 1, dim=1)[1]


def fusion_survival_loss(out: FusionOutput, y: Tensor, c: Tensor, alpha: float = 0.0) -> Tensor:
    """The upstream training loss of a fusion model: NLLSurv (+ ``aux_loss``).

    For MOTCat bags split into chunks the NLL is averaged over the chunks of each bag (upstream computes the
    loss of every chunk and divides their sum by their number), then over the bags.

    Args:
        out: The model output.
        y: ``(B,)`` time bins.
        c: ``(B,)`` censorship (1 = censored).
        alpha: NLLSurv alpha (upstream ``define_loss('nll_surv*')``: 0).
    """
    if out.chunks is None:
        loss = nll_surv_loss(out.survival.hazards, out.survival.S, y, c, alpha=alpha)
    else:
        y, c = y.reshape(-1), c.reshape(-1)
        per_bag = [nll_surv_loss(ch.hazards, ch.S, y[b].expand(len(ch.S)), c[b].expand(len(ch.S)),
                                 alpha=alpha) for b, ch in enumerate(out.chunks)]
        loss = torch.stack(per_bag).mean()
    return loss if out.aux_loss is None else loss + out.aux_loss


# --------------------------------------------------------------------------------------------------- inputs


def require_sizes(omic_sizes: Sequence[int] | None, name: str) -> list[int]:
    """``omic_sizes`` as a list of positive ints; required by the signature-group models.

    Raises:
        MstarError: If missing or not positive.
    """
    if not omic_sizes:
        raise MstarError(f"{name} needs omic_sizes: the number of genes of each signature group found in the "
                         "RNA table (e.g. the 6 groups of signatures.csv)")
    sizes = [int(s) for s in omic_sizes]
    if min(sizes) < 1:
        raise MstarError(f"{name}: every omic group needs at least one gene; got omic_sizes={sizes}")
    return sizes


def as_omic_list(omics: OmicsInput) -> list[Tensor]:
    """``omics`` as a list of ``(B, size_i)`` tensors (a single tensor becomes a list of one)."""
    if isinstance(omics, Tensor):
        return [omics]
    return list(omics)


def check_omics(omics: OmicsInput, sizes: Sequence[int], batch: int | None, what: str) -> list[Tensor]:
    """Validate signature-group inputs: one ``(B, size_i)`` tensor per group, sizes as built (the models then
    cast them to the patch dtype, as upstream casts omics to float).

    Raises:
        MstarError: On a wrong number of groups, width or batch size.
    """
    groups = as_omic_list(omics)
    if len(groups) != len(sizes):
        raise MstarError(f"{what} expects {len(sizes)} omic groups of sizes {list(sizes)}; got {len(groups)}")
    for i, (g, size) in enumerate(zip(groups, sizes)):
        if g.dim() != 2 or g.shape[1] != size or (batch is not None and g.shape[0] != batch):
            want = f"({batch if batch is not None else 'B'}, {size})"
            raise MstarError(f"{what}: omic group {i} must be {want}; got {tuple(g.shape)} (the model was "
                             f"built with omic_sizes={list(sizes)}: rebuild it with the sizes of your data)")
    return groups


def concat_omics(omics: OmicsInput, dim: int, batch: int | None, what: str) -> Tensor:
    """One ``(B, dim)`` omic vector: a single tensor, or the groups concatenated in order.

    Raises:
        MstarError: If the total width is not ``dim`` or the batch size differs.
    """
    groups = as_omic_list(omics)
    if not groups:
        raise MstarError(f"{what} needs an omic vector; got no omic tensor")
    x = groups[0] if len(groups) == 1 else torch.cat(groups, dim=1)  # (B, dim)
    if x.dim() != 2 or x.shape[1] != dim or (batch is not None and x.shape[0] != batch):
        want = f"({batch if batch is not None else 'B'}, {dim})"
        raise MstarError(f"{what} expects an omic vector {want} (groups are concatenated); "
                         f"got {tuple(x.shape)}")
    return x


def check_path(x: Tensor, mask: Tensor | None, in_dim: int) -> Tensor:
    """Validate a bag batch like the aggregators do and zero padded rows (NaN there cannot leak)."""
    check_bags(x, mask, in_dim)
    if not all_real(mask):
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))  # (B, N, D)
    return x


# --------------------------------------------------------------------------------------------------- blocks


def snn_stack(in_dim: int, hidden: Sequence[int], dropout: float = 0.25) -> nn.Sequential:
    """SNN blocks ``in_dim -> hidden[0] -> ... -> hidden[-1]`` (keys ``{k}.0.weight``): an upstream omic
    branch."""
    dims = [in_dim, *hidden]
    return nn.Sequential(*[snn_block(dims[k], dims[k + 1], dropout) for k in range(len(hidden))])


def signature_networks(omic_sizes: Sequence[int], hidden: Sequence[int],
                       dropout: float = 0.25) -> nn.ModuleList:
    """One :func:`snn_stack` per signature group (MCAT/MOTCat ``sig_networks``, CMTA ``genomics_fc``)."""
    return nn.ModuleList([snn_stack(size, hidden, dropout) for size in omic_sizes])


def encode_signatures(networks: nn.ModuleList, groups: Sequence[Tensor]) -> Tensor:
    """Each group through its network, stacked as tokens: ``(B, G, hidden[-1])``."""
    return torch.stack([net(g) for net, g in zip(networks, groups)], dim=1)


def concat_mlp(dim: int) -> nn.Sequential:
    """Upstream ``concat`` fusion: ``Linear(2*dim, dim), ReLU, Linear(dim, dim), ReLU`` (``mm.0``/``.2``)."""
    return nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())


def linear_relu_dropout(in_dim: int, out_dim: int, dropout: float = 0.25) -> nn.Sequential:
    """``Linear, ReLU, Dropout`` (keys ``0.*``): upstream ``wsi_net`` and ``*_rho``."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), FastDropout(dropout))


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with upstream parameter names, batch first.

    Self-attention (``key=None``) follows the transformer layers of MCAT/MOTCat: one packed input projection,
    ``q / sqrt(d)``. Cross attention (``key`` given; MCAT co-attention, CMTA translation) follows the custom
    upstream MHA: ``q`` from the first third of the projection, ``k, v`` from one product with the other two
    thirds, ``q * d ** -0.5``. Both return the RAW scaled scores (before softmax) that MCAT reports.

    Args:
        dim: Embedding width ``E``.
        heads: Attention heads.
        dropout: Dropout on the attention weights (training only).
    """

    def __init__(self, dim: int = 256, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise MstarError(f"attention width {dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, -1).transpose(1, 2).reshape(b * self.heads, n, -1)  # (B*H, n, d)

    def forward(self, query: Tensor, key: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` to ``key`` (= values).

        Args:
            query: ``(B, Lq, E)``.
            key: ``(B, Lk, E)`` keys and values; ``None`` for self-attention.
            key_padding_mask: ``(B, Lk)`` bool, True = padding (ignored keys).

        Returns:
            ``(out (B, Lq, E), scores (B, H, Lq, Lk))``: scores are the scaled ``q.k`` before softmax,
            ``-inf`` at padded keys.
        """
        b, lq, e = query.shape
        d = e // self.heads
        if key is None:
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3E)
            q, k, v = qkv.chunk(3, dim=-1)  # (B, L, E) x 3
            q = self._split(q) / math.sqrt(d)  # (B*H, Lq, d)
        else:
            q = F.linear(query, self.in_proj_weight[:e], self.in_proj_bias[:e])  # (B, Lq, E)
            kv = F.linear(key, self.in_proj_weight[e:], self.in_proj_bias[e:])  # (B, Lk, 2E)
            k, v = kv.chunk(2, dim=-1)  # (B, Lk, E) x 2
            q = self._split(q * float(d) ** -0.5)  # (B*H, Lq, d)
        k, v = self._split(k), self._split(v)  # (B*H, Lk, d)
        scores = torch.bmm(q, k.transpose(1, 2))  # (B*H, Lq, Lk)
        if key_padding_mask is not None:
            pad = key_padding_mask.repeat_interleave(self.heads, dim=0)[:, None, :]  # (B*H, 1, Lk)
            scores = scores.masked_fill(pad, float("-inf"))
        weights = F.dropout(torch.softmax(scores, dim=-1), p=self.dropout, training=self.training)
        out = torch.bmm(weights, v)  # (B*H, Lq, d)
        out = out.reshape(b, self.heads, lq, d).transpose(1, 2).reshape(b, lq, e)  # (B, Lq, E)
        return self.out_proj(out), scores.reshape(b, self.heads, lq, -1)


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer layer (torch ``TransformerEncoderLayer`` semantics, ReLU feed-forward).

    ``x = norm1(x + drop(self_attn(x)))``, ``x = norm2(x + drop(linear2(drop(relu(linear1(x))))))``.
    """

    def __init__(self, dim: int = 256, heads: int = 8, ff_dim: int = 512, dropout: float = 0.25) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, L, dim)`` -> same shape."""
        x = self.norm1(x + self.dropout1(self.self_attn(x)[0]))  # (B, L, dim)
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer` (keys ``layers.{j}.*``), no final norm (MCAT/MOTCat)."""

    def __init__(self, dim: int = 256, heads: int = 8, ff_dim: int = 512, dropout: float = 0.25,
                 n_layers: int = 2) -> None:
        super().__init__()
        layers = [TransformerEncoderLayer(dim, heads, ff_dim, dropout) for _ in range(n_layers)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, L, dim)`` -> same shape."""
        for layer in self.layers:
            x = layer(x)
        return x


def gated_pool(head: GatedAttention, rho: nn.Module, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Gated-attention pooling of a few tokens, then ``rho``.

    Args:
        head: Scores each token.
        rho: Applied to the pooled vector.
        tokens: ``(B, L, E)``.

    Returns:
        ``(rho(sum softmax(s)_l tokens_l) (B, E'), scores s (B, L) before softmax)``.
    """
    scores = head(tokens).squeeze(-1)  # (B, L)
    pooled = torch.bmm(torch.softmax(scores, dim=-1).unsqueeze(1), tokens).squeeze(1)  # (B, E)
    return rho(pooled), scores


class GenomicGuidedTrunk(nn.Module):
    """The trunk MCAT and MOTCat share (upstream ``MCAT_Surv`` / ``MOTCAT_Surv`` minus the co-attention).

    ``wsi_net`` embeds patches (Linear-ReLU-Dropout to 256); ``sig_networks`` embed the signature groups
    (two SNN blocks to 256 each); a co-attention (the subclass's ``coattn``) turns the patches into one path
    token per group; path and omic tokens each go through a 2-layer transformer, gated-attention pooling and
    ``rho``; ``mm`` (concat MLP) and ``classifier`` give the per-bin logits.

    Args:
        path_dim: Patch feature width.
        omic_sizes: Genes per signature group.
        n_bins: Discrete time bins.
        dropout: Dropout of transformers, attention heads and rho (upstream 0.25).
        dim: Token width (upstream "small": 256).
    """

    def __init__(self, path_dim: int, omic_sizes: Sequence[int], n_bins: int = 4, dropout: float = 0.25,
                 dim: int = 256) -> None:
        super().__init__()
        self.path_dim, self.omic_sizes, self.n_bins, self.dim = path_dim, list(omic_sizes), n_bins, dim
        self.wsi_net = linear_relu_dropout(path_dim, dim, 0.25)
        self.sig_networks = signature_networks(omic_sizes, (dim, dim))
        self.path_transformer = TransformerEncoder(dim, 8, 2 * dim, dropout)
        self.path_attention_head = GatedAttention(dim, dim, dropout=dropout, n_out=1)
        self.path_rho = linear_relu_dropout(dim, dim, dropout)
        self.omic_transformer = TransformerEncoder(dim, 8, 2 * dim, dropout)
        self.omic_attention_head = GatedAttention(dim, dim, dropout=dropout, n_out=1)
        self.omic_rho = linear_relu_dropout(dim, dim, dropout)
        self.mm = concat_mlp(dim)
        self.classifier = nn.Linear(dim, n_bins)

    def head(self, path_tokens: Tensor, omic_tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Co-attended path tokens and omic tokens ``(B, G, dim)`` -> ``(logits (B, T), path scores (B, G),
        omic scores (B, G))``."""
        path_tokens = self.path_transformer(path_tokens)  # (B, G, dim)
        omic_tokens = self.omic_transformer(omic_tokens)  # (B, G, dim)
        h_path, a_path = gated_pool(self.path_attention_head, self.path_rho, path_tokens)
        h_omic, a_omic = gated_pool(self.omic_attention_head, self.omic_rho, omic_tokens)
        logits = self.classifier(self.mm(torch.cat([h_path, h_omic], dim=1)))  # (B, T)
        return logits, a_path, a_omic
