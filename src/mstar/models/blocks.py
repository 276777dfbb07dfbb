"""Building blocks shared by the aggregators and the fusion models (MCAT, CMTA, Porpoise).

Parameter names follow the upstream mSTAR modules so their state_dicts load unchanged:
``TransLayer`` (``norm``, ``attn.to_qkv``, ``attn.to_out.0``, ``attn.res_conv``), ``PPEG`` (``proj``,
``proj1``, ``proj2``), ``GatedAttention`` (``attention_a.0``, ``attention_b.0``, ``attention_c``) and
``snn_block`` (``0`` = the Linear).
"""

from __future__ import annotations

import torch
from nystrom_attention import NystromAttention
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.dropout import FastDropout


def activation(name: str) -> nn.Module:
    """The activation named ``relu`` or ``gelu`` (the two upstream options)."""
    layers = {"relu": nn.ReLU, "gelu": nn.GELU}
    if name.lower() not in layers:
        raise MstarError(f"act={name!r} is not supported; use one of {sorted(layers)}")
    return layers[name.lower()]()


def xavier_init_(module: nn.Module) -> None:
    """Upstream TransMIL/CMTA initialisation: xavier-normal Linear weights, zero biases, LayerNorm 1/0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def all_real(mask: Tensor | None) -> bool:
    """True when there is no padding (models then skip the masking work, a full copy of the bag on CPU)."""
    return mask is None or bool(mask.all())


def check_bags(x: Tensor, mask: Tensor | None, in_dim: int | None) -> None:
    """Validate an aggregator input: ``x`` ``(B, N, D)``, ``mask`` bool ``(B, N)`` with a real patch per bag.

    Raises:
        MstarError: On a wrong rank, feature size, mask shape or an all-padding bag.
    """
    if x.dim() != 3:
        raise MstarError(f"patch features must be (B, N, D); got shape {tuple(x.shape)}")
    if in_dim is not None and x.shape[-1] != in_dim:
        raise MstarError(f"patch features have D={x.shape[-1]} but the model expects in_dim={in_dim}; "
                         "use features from the matching encoder or build the model with that in_dim")
    if x.shape[1] == 0:
        raise MstarError("a bag has no patches (N=0)")
    if mask is None:
        return
    if mask.shape != x.shape[:2] or mask.dtype != torch.bool:
        expected = tuple(x.shape[:2])
        raise MstarError(f"mask must be bool (B, N) = {expected}; got {mask.dtype} {tuple(mask.shape)}")
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise MstarError(f"bags {empty} have no real patches (mask all False)")


class TransLayer(nn.Module):
    """Pre-norm Nystrom self-attention with a residual: ``x + NystromAttention(LayerNorm(x))`` (TransMIL).

    The attention is the PyPI ``nystrom_attention.NystromAttention`` (bitwise equal to upstream's copy).
    Its Moore-Penrose initialisation divides by a maximum taken over the WHOLE input tensor, which would
    couple the bags of a batch; this layer therefore attends bag by bag, so a bag's output never depends on
    the other bags (and equals its batch-of-one output).

    Args:
        dim: Token width.
        heads: Attention heads (upstream 8).
        dim_head: Width per head; default ``dim // 8`` as upstream.
        num_landmarks: Nystrom landmarks; default ``dim // 2`` as upstream (256 at dim 512).
        pinv_iterations: Iterations of the pseudo-inverse approximation.
        dropout: Dropout after the output projection.
    """

    def __init__(self, dim: int = 512, heads: int = 8, dim_head: int | None = None,
                 num_landmarks: int | None = None, pinv_iterations: int = 6, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(
            dim=dim,
            dim_head=dim_head or dim // 8,
            heads=heads,
            num_landmarks=num_landmarks or dim // 2,
            pinv_iterations=pinv_iterations,
            residual=True,  # depthwise (33 x 1) conv over the values, added to the output
            dropout=dropout,
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, L, dim)`` -> ``(B, L, dim)``."""
        y = self.norm(x)  # (B, L, dim)
        if y.shape[0] == 1:
            return x + self.attn(y)
        return x + torch.cat([self.attn(y[i : i + 1]) for i in range(y.shape[0])])  # (B, L, dim)


class PPEG(nn.Module):
    """Pyramid position encoding generator: depthwise 7/5/3 convolutions + identity on the patch grid.

    The first token (CLS) passes through unchanged; the others must fill an ``H x W`` grid row by row.
    """

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 7 // 2, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 5 // 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 3 // 2, groups=dim)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        """``x``: ``(B, 1 + H*W, C)`` -> same shape."""
        b, _, c = x.shape
        cls, feat = x[:, :1], x[:, 1:]  # (B, 1, C), (B, H*W, C)
        grid = feat.transpose(1, 2).reshape(b, c, height, width)  # (B, C, H, W)
        grid = grid + self.proj(grid) + self.proj1(grid) + self.proj2(grid)  # (B, C, H, W)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)  # (B, 1 + H*W, C)


class GatedAttention(nn.Module):
    """Gated attention scores (Ilse et al. 2018): ``attention_c(tanh(a(x)) * sigmoid(b(x)))``.

    Same parameters as CLAM/MCAT ``Attn_Net_Gated``; returns only the scores (upstream also returns ``x``).

    Args:
        in_dim: Input width ``L``.
        hidden_dim: Hidden width ``D``.
        dropout: Dropout after each branch (upstream: a flag meaning 0.25); 0 for none.
        n_out: Number of attention heads / classes ``K``.
    """

    def __init__(self, in_dim: int = 1024, hidden_dim: int = 256, dropout: float = 0.0,
                 n_out: int = 1) -> None:
        super().__init__()
        drop = [FastDropout(dropout)] if dropout else []
        self.attention_a = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh(), *drop)
        self.attention_b = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Sigmoid(), *drop)
        self.attention_c = nn.Linear(hidden_dim, n_out)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(..., L)`` -> scores ``(..., K)`` (before softmax)."""
        return self.attention_c(self.attention_a(x) * self.attention_b(x))


def snn_block(in_dim: int, out_dim: int, dropout: float = 0.25) -> nn.Sequential:
    """Self-normalising block (Klambauer et al. 2017): Linear + ELU + AlphaDropout; keys ``0.weight/bias``."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ELU(), nn.AlphaDropout(p=dropout))

