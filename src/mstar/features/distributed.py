"""Sharding slides across ranks (``torchrun``) and merging the per-rank summaries.

Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) with no process group
yet, extraction opens a ``gloo`` group itself (it only exchanges summary rows, a few KB, so gloo is enough
even on GPUs) and closes it at the end. Each rank takes its own slides; rank 0 writes the one summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mstar.errors import MstarError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``; ``local_rank`` picks the GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the running process group, or open a gloo one under torchrun; single process otherwise."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available() or "RANK" not in os.environ:
        return DistInfo()
    dist.init_process_group(backend="gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def shard(weights: list[int], rank: int, world_size: int) -> list[int]:
    """Indices of the items rank ``rank`` processes, balanced by weight (tiles per slide).

    Greedy longest-first: items sorted by weight (descending, then index) go to the least-loaded rank
    (ties to the lowest rank). Deterministic, so every rank computes the same partition.
    """
    load = [0] * world_size
    owner = [0] * len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += max(1, weights[i])
    return [i for i in range(len(weights)) if owner[i] == rank]


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def gather_rows(rows: list[dict], info: DistInfo) -> list[dict] | None:
    """Every rank's rows on rank 0 (None on the other ranks); the rows themselves when single-process."""
    if not info.active:
        return rows
    out: list | None = [None] * info.world_size if info.rank == 0 else None
    dist.gather_object(rows, out, dst=0)
    return [row for part in out for row in part] if out is not None else None


def finish(info: DistInfo) -> None:
    """Close the process group if this module opened it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(device: str | None, info: DistInfo = DistInfo()) -> torch.device:
    """A torch device from ``--device``: None/``auto`` (CUDA when available), ``cpu``, ``cuda``
    (``cuda:<LOCAL_RANK>`` under torchrun), ``cuda:N``, ``mps``...; a malformed name or a CUDA device this
    process cannot see is one line."""
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise MstarError(f"--device {device}: not a torch device (auto, cpu, cuda, cuda:1, mps, "
                         "...)") from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise MstarError(f"--device {device}: no CUDA device is visible to this process; use --device cpu")
    if dev.index is None:
        return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    if dev.index >= torch.cuda.device_count():
        raise MstarError(f"--device {device}: this process sees {torch.cuda.device_count()} CUDA device(s)")
    return dev
