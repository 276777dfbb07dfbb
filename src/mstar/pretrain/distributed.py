"""Gather embeddings across ranks so contrastive negatives span the global batch.

Convention (the same as open_clip's ``gather_features(..., gather_with_grad=True)`` without ``local_loss``):
every rank gathers all embeddings and computes the loss ``L`` of the **global** batch, so all ranks hold the
same value. The backward of :func:`gather_with_grad` sums, over ranks, the gradients that reach each shard,
so the gradient of rank r's local embeddings is ``W · ∂L/∂z_r`` (``W`` = world size). DDP then **averages**
parameter gradients over ranks, which divides that factor out again: the parameter gradient equals the one
of a single process that saw the whole global batch. (Summing the ranks' embedding gradients therefore gives
``W`` times the single-process gradient; dividing by ``W`` gives it exactly.)

Ranks may hold different numbers of rows: shards are padded to the largest one for the collective and
trimmed again, so the gathered tensor is the concatenation of the real rows in rank order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of ranks (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _shard_sizes(x: Tensor) -> list[int]:
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    if x.shape[0] == rows:
        return x.contiguous()
    pad = x.new_zeros((rows - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad], dim=0)


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` ``(b_r, ...)`` along dim 0, keeping the autograd graph of the local shard.

    Args:
        x: This rank's rows.

    Returns:
        ``(Σ_r b_r, ...)``, rows of rank 0 first; ``x`` itself when not distributed. Gradients flowing back
        are summed over ranks (see the module docstring for the scaling).
    """
    if not is_distributed():
        return x
    sizes = _shard_sizes(x)
    shards = dist_fn.all_gather(_pad_rows(x, max(sizes)))
    return torch.cat([shard[:n] for shard, n in zip(shards, sizes)], dim=0)


def gather_no_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` along dim 0 without gradients (labels, masks); booleans are supported."""
    if not is_distributed():
        return x
    is_bool = x.dtype == torch.bool
    y = x.to(torch.uint8) if is_bool else x.detach()
    sizes = _shard_sizes(y)
    padded = _pad_rows(y, max(sizes))
    shards = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(shards, padded)
    out = torch.cat([shard[:n] for shard, n in zip(shards, sizes)], dim=0)
    return out.bool() if is_bool else out
