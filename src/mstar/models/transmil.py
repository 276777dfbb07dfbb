"""TransMIL (Shao et al., NeurIPS 2021): the mSTAR slide aggregator, as in upstream mSTAR.

For one bag of ``n`` patch features::

    h   = _fc1(x)                        Linear(D, 512) + ReLU + Dropout(0.25)  (see input_proj)
    h   = [h, h[:k]]                     pad to a square s*s = ceil(sqrt n)^2 by repeating the first k tokens
    h   = [cls, h]                       learned CLS token (init N(0, 1e-6))
    h   = layer1(h)                      x + NystromAttention(LN(x))
    h   = pos_layer(h, s, s)             PPEG: depthwise 7/5/3 convs on the s x s patch grid
    h   = layer2(h)
    h   = norm(h)                        LayerNorm
    embedding = h[:, 0]                  (B, 512); tokens = h[:, 1 : n + 1]  (B, n, 512), patch order kept

In mSTAR stage 1 this trunk (``_fc1`` = Identity, after a separate Linear ``proj``) is the slide encoder;
in stage 2 its per-patch ``tokens`` are the targets of the patch extractor.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.blocks import PPEG, TransLayer, activation, check_bags, xavier_init_
from mstar.models.dropout import FastDropout
from mstar.models.output import SlideOutput
from mstar.models.registry import register_model

INPUT_PROJ = ("mlp", "linear", "none")


def _input_proj(kind: bool | str, in_dim: int, dim: int, act: str, dropout: float) -> nn.Module:
    if isinstance(kind, bool):
        kind = "mlp" if kind else "none"
    if kind == "mlp":  # upstream downstream-task TransMIL
        drop = [FastDropout(dropout)] if dropout else []
        return nn.Sequential(nn.Linear(in_dim, dim), activation(act), *drop)
    if kind == "linear":  # stage-1 aggregator: the checkpoint's `proj` (no activation)
        return nn.Sequential(nn.Linear(in_dim, dim))
    if kind == "none":
        if in_dim != dim:
            raise MstarError(f"input_proj='none' needs in_dim == dim; got in_dim={in_dim}, dim={dim}")
        return nn.Identity()
    raise MstarError(f"input_proj={kind!r} is not one of {INPUT_PROJ} (or True/False)")


class TransMIL(nn.Module):
    """TransMIL aggregator; parameter names equal upstream's (``_fc1``, ``cls_token``, ``layer1``, ...).

    Args:
        in_dim: Patch feature width ``D``.
        dim: Token width (upstream 512; CMTA uses 256).
        input_proj: ``"mlp"``/True = Linear + act + Dropout (upstream), ``"linear"`` = Linear only (stage-1
            ``proj``), ``"none"``/False = Identity (features already ``dim`` wide: stage-1
            ``vision_encoder``).
        act: ``relu`` or ``gelu`` in the ``mlp`` projection.
        dropout: Dropout of the ``mlp`` projection (upstream 0.25).
        heads: Attention heads (8).
        dim_head: Width per head; default ``dim // 8`` (64 at dim 512, 32 at dim 256).
        num_landmarks: Nystrom landmarks; default ``dim // 2`` (256 at 512, 128 at 256).
        pinv_iterations: Pseudo-inverse iterations (6).
        attn_dropout: Dropout inside the attention output (0.1).
        ppeg: Square padding + PPEG between the layers (True). False gives CMTA's genomics transformer.

    Batching: bags of one batch never influence each other. Without padding (``mask`` None or all True)
    the batch runs at once and each bag's output equals its batch-of-one output. With padding every bag is
    run on its real patches only (a loop over bags): the square padding, PPEG grid and Nystrom landmarks are
    those of the bag alone, so the result again equals the batch-of-one output, and padded token rows are 0.
    """

    def __init__(self, in_dim: int = 1024, dim: int = 512, input_proj: bool | str = "mlp", act: str = "relu",
                 dropout: float = 0.25, heads: int = 8, dim_head: int | None = None,
                 num_landmarks: int | None = None, pinv_iterations: int = 6, attn_dropout: float = 0.1,
                 ppeg: bool = True) -> None:
        super().__init__()
        self.in_dim, self.embed_dim = in_dim, dim
        layer = dict(dim=dim, heads=heads, dim_head=dim_head, num_landmarks=num_landmarks,
                     pinv_iterations=pinv_iterations, dropout=attn_dropout)
        self._fc1 = _input_proj(input_proj, in_dim, dim, act, dropout)
        self.pos_layer = PPEG(dim) if ppeg else None
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.layer1 = TransLayer(**layer)
        self.layer2 = TransLayer(**layer)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.cls_token, std=1e-6)
        xavier_init_(self)

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Run the trunk on already projected tokens of equal-length bags.

        Args:
            h: ``(B, n, dim)``, i.e. after ``_fc1``.

        Returns:
            ``(cls (B, dim), tokens (B, L, dim))`` after the final LayerNorm, where ``L = ceil(sqrt n)^2``
            includes the square-padding repeats (CMTA uses them) when ``ppeg`` is on, else ``L = n``.
        """
        b, n, _ = h.shape
        side = math.ceil(math.sqrt(n))
        if self.pos_layer is not None:
            h = torch.cat([h, h[:, : side * side - n]], dim=1)  # (B, s*s, dim)
        h = torch.cat([self.cls_token.expand(b, -1, -1), h], dim=1)  # (B, 1 + L, dim)
        h = self.layer1(h)  # (B, 1 + L, dim)
        if self.pos_layer is not None:
            h = self.pos_layer(h, side, side)  # (B, 1 + L, dim)
        h = self.layer2(h)  # (B, 1 + L, dim)
        h = self.norm(h)  # (B, 1 + L, dim)
        return h[:, 0], h[:, 1:]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> SlideOutput:
        """Embed each bag (CLS) and return the per-patch tokens.

        Args:
            x: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True for real patches; ``None`` means all real.

        Returns:
            ``SlideOutput(embedding (B, dim), tokens (B, N, dim), attention=None)``; ``tokens[b, i]`` belongs
            to input patch ``i``; padded rows are 0.
        """
        check_bags(x, mask, self.in_dim)
        x = x.to(self.cls_token.dtype)  # upstream casts to float
        n = x.shape[1]
        if mask is None or bool(mask.all()):
            cls, tokens = self.encode(self._fc1(x))
            return SlideOutput(embedding=cls, tokens=tokens[:, :n])
        embeddings, all_tokens = [], []
        for xb, mb in zip(x, mask):
            idx = mb.nonzero().flatten()  # (n_b,)
            cls, tokens = self.encode(self._fc1(xb[idx].unsqueeze(0)))  # (1, dim), (1, L_b, dim)
            full = tokens.new_zeros(n, self.embed_dim)  # (N, dim)
            full = full.index_copy(0, idx, tokens[0, : idx.numel()])  # (N, dim)
            embeddings.append(cls[0])
            all_tokens.append(full)
        return SlideOutput(embedding=torch.stack(embeddings), tokens=torch.stack(all_tokens))


@register_model("transmil", "TransMIL (Shao 2021): Linear-ReLU proj, 2 Nystrom layers + PPEG, CLS -> 512-d; "
                            "the mSTAR aggregator")
def transmil(**kwargs: Any) -> TransMIL:
    """TransMIL with upstream defaults (``in_dim=1024, dim=512``, 8 heads x 64, 256 landmarks)."""
    return TransMIL(**kwargs)


@register_model("transmil_stage1", "mSTAR stage-1 slide encoder: Linear proj (no activation) + TransMIL "
                                   "trunk -> 512-d CLS and per-patch tokens")
def transmil_stage1(**kwargs: Any) -> TransMIL:
    """TransMIL whose input projection is the plain Linear ``proj`` of the stage-1 checkpoint."""
    return TransMIL(input_proj="linear", **kwargs)
