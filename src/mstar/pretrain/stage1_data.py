"""Slide-level stage-1 items (bag, report, RNA profile, cancer type), an epoch-seeded sampler and collate.

Every item is one slide. Its patch subset at train time is drawn from a generator seeded by
``(seed, epoch, item)``, and the :class:`EpochSampler` order by ``(seed, epoch)``, so a run resumed from
an epoch checkpoint sees exactly the batches an uninterrupted run would have seen; under DDP the sampler
hands rank ``r`` every ``W``-th item of the same order, so the global batch equals a single process's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mstar.run.sharding import rank_share
from mstar.utils.seeds import derive_seed


@dataclass
class Stage1Items:
    """Aligned per-slide fields of one split (all lists/arrays have one entry per slide)."""

    slides: list[str]
    cases: list[str]
    labels: np.ndarray            # (S,) cancer-type index
    texts: list[str | None]       # None = no report
    report_keys: list[str | None]
    gene_values: np.ndarray       # (S, G) float32, 0 where masked
    gene_mask: np.ndarray         # (S, G) bool, all False without a profile
    has_gene: np.ndarray          # (S,) bool
    has_slide: np.ndarray | None = None  # (S,) bool; None: every item has a slide bag

    def __len__(self) -> int:
        return len(self.slides)


class Stage1Dataset(Dataset):
    """Items of one split; ``dataset[(i, epoch)]`` (training) or ``dataset[i]`` (all patches, inference).

    Args:
        bags: A :class:`~mstar.data.bags.BagStore` keyed by slide (anything with ``bag(slide) -> (N, D)``).
        items: The split's aligned fields.
        max_patches: Patch subset size at train time (None = all).
        train: Draw random patch subsets.
        seed: Base seed of the subsets.
    """

    def __init__(self, bags, items: Stage1Items, max_patches: int | None = None, train: bool = False,
                 seed: int = 0) -> None:
        if items.has_slide is None:
            items.has_slide = np.ones(len(items), dtype=bool)
        self.bags, self.items = bags, items
        self.max_patches, self.train, self.seed = max_patches, train, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        i, epoch = key if isinstance(key, tuple) else (key, 0)
        it = self.items
        has_slide = bool(it.has_slide[i]) and self.bags is not None
        bag = self.bags.bag(it.slides[i]) if has_slide else torch.zeros(0, 1, dtype=torch.float16)  # (N, D)
        if self.train and self.max_patches and bag.shape[0] > self.max_patches:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, i))
            keep = torch.randperm(bag.shape[0], generator=g)[: self.max_patches]
            bag = bag[keep.sort().values]  # (max_patches, D), patch order kept
        text = it.texts[i]
        return {"x": bag, "text": text or "", "has_report": text is not None,
                "gene_values": torch.from_numpy(it.gene_values[i]),
                "gene_mask": torch.from_numpy(it.gene_mask[i]),
                "has_gene": bool(it.has_gene[i]), "has_slide": has_slide, "label": int(it.labels[i]),
                "slide": it.slides[i], "case": it.cases[i]}


def collate_stage1(batch: list[dict]) -> dict:
    """Pad bags to the longest: ``x`` (B, N, D) float32 + ``mask`` (B, N); stack the rest.

    Missing reports are ``""`` with ``has_report`` False (they are encoded but take no part in the loss,
    which keeps every parameter in use under DDP); missing RNA is an all-False ``gene_mask``; a sample
    without a slide bag (``has_slide`` False) has an all-False ``mask``.
    """
    n_max = max(1, max(b["x"].shape[0] for b in batch))
    dim = next((b["x"].shape[1] for b in batch if b["x"].shape[0]), 1)
    x = torch.zeros(len(batch), n_max, dim)  # (B, N, D)
    mask = torch.zeros(len(batch), n_max, dtype=torch.bool)  # (B, N)
    for i, b in enumerate(batch):
        n = b["x"].shape[0]
        x[i, :n] = b["x"].float()
        mask[i, :n] = True
    return {"x": x, "mask": mask, "texts": [b["text"] for b in batch],
            "has_report": torch.tensor([b["has_report"] for b in batch]),
            "gene_values": torch.stack([b["gene_values"] for b in batch]),  # (B, G)
            "gene_mask": torch.stack([b["gene_mask"] for b in batch]),  # (B, G)
            "has_gene": torch.tensor([b["has_gene"] for b in batch]),
            "has_slide": torch.tensor([b.get("has_slide", True) for b in batch]),
            "labels": torch.tensor([b["label"] for b in batch], dtype=torch.long),
            "slides": [b["slide"] for b in batch], "cases": [b["case"] for b in batch]}


class EpochSampler(Sampler):
    """Shuffled order seeded by ``(seed, epoch)``, sharded over ranks; yields ``(index, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch. With ``W`` ranks the order is padded (by
    wrapping) to a multiple of ``W`` and rank ``r`` takes positions ``r, r + W, ...``; batching ``b``
    consecutive items per rank therefore gives every step the same global batch as one process with
    batch ``W·b``.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 7919))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        for i in rank_share(order, self.rank, self.world):
            yield i, self.epoch
