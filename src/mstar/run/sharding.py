"""One epoch's order shared by DDP ranks, and the union of what each rank computed.

Stages that shard their own order (stage 1's ``EpochSampler``, report generation's ``ShuffledBatches``) give
every rank the same permutation and take :func:`rank_share` of it; a step's ``W`` per-rank batches are then
one process's batch of ``W · b``. Results computed in shares (validation reports) are merged with
:func:`gather_union`, so every rank holds the same and decides the same.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def rank_share(order: list[int], rank: int, world: int) -> list[int]:
    """Positions ``rank, rank + W, ...`` of ``order`` padded by wrapping to a multiple of ``W``: every rank
    gets ``ceil(n / W)`` items (``order`` itself for one process)."""
    n = len(order)
    total = -(-n // world) * world
    return (order * (total // max(n, 1) + 1))[:total][rank::world]


def gather_union(part: dict[str, Any]) -> dict[str, Any]:
    """The union of every rank's ``part`` (``part`` itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return part
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part)
    return {k: v for p in parts for k, v in p.items()}
