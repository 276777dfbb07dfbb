"""Per-case inputs of multimodal survival: the slide bag (optional) and the standardised omic vector.

The store plugs into the supervised runner: its ``dataset``/``collate`` give batches
``(x (B, N, D), mask (B, N), target, cases, {"omics": ...})`` where ``omics`` is one ``(B, size_i)`` tensor
per signature group or the full ``(B, F)`` vector, as the fusion models take them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mstar.data.bags import BagDataset, BagStore, collate_bags
from mstar.data.omics import OmicsMatrix, OmicsScaler
from mstar.errors import MstarError


class MultimodalStore:
    """Bags (``None`` for genomic-only models) and omic vectors of every case.

    Args:
        bags: The slide bags, or ``None``.
        omics: Raw omic inputs, or ``None`` (WSI-only models).
        scaler: Standardisation fitted on a unit's training cases (see :meth:`fitted`); ``None`` until then.
    """

    def __init__(self, bags: BagStore | None, omics: OmicsMatrix | None, scaler: OmicsScaler | None = None):
        self.bags, self.omics, self.scaler = bags, omics, scaler
        self.dim = bags.dim if bags is not None and bags.dim else 1  # patch width; 1 when there are no slides
        self._vectors: dict[str, torch.Tensor] = {}
        if omics is not None and scaler is not None:
            z = scaler.transform(omics.values)  # (C, F)
            self._vectors = {c: torch.from_numpy(z[i]) for i, c in enumerate(omics.cases)}

    def fitted(self, train_cases: Sequence[str]) -> MultimodalStore:
        """A store whose omics are standardised with statistics of ``train_cases`` only."""
        if self.omics is None:
            return self
        return MultimodalStore(self.bags, self.omics, self.omics.fit_scaler(list(train_cases)))

    def vector(self, case: str) -> torch.Tensor | None:
        if self.omics is None:
            return None
        if not self._vectors:
            raise MstarError("internal: omics are used before the training-fold scaler was fitted")
        return self._vectors[case]

    def dataset(self, cases: Sequence[str], targets: Sequence, max_patches: int | None, train: bool,
                seed: int) -> Dataset:
        return MultimodalDataset(self, cases, targets, max_patches, train, seed)

    def collate(self, batch):
        """``(x, mask, target, cases, {"omics": groups | vector})``; no 5th element without omics."""
        x, mask, target, cases = collate_bags([item[:3] for item in batch])
        if self.omics is None:
            return x, mask, target, cases
        vec = torch.stack([item[3] for item in batch])  # (B, F)
        layout = self.omics.layout
        omics = list(torch.split(vec, layout.sizes, dim=1)) if layout.mode == "groups" else vec
        return x, mask, target, cases, {"omics": omics}


class MultimodalDataset(Dataset):
    """(bag, target, case, omic vector) per case; bags subsampled like :class:`BagDataset` when training."""

    def __init__(self, store: MultimodalStore, cases: Sequence[str], targets: Sequence,
                 max_patches: int | None, train: bool, seed: int):
        self.store, self.cases, self.targets = store, list(cases), list(targets)
        self.bags = (None if store.bags is None
                     else BagDataset(store.bags, cases, targets, max_patches, train, seed))
        self.empty = torch.zeros(0, 1)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int):
        bag = self.empty if self.bags is None else self.bags[i][0]
        return bag, self.targets[i], self.cases[i], self.store.vector(self.cases[i])


def random_bags(folder, slides: Sequence[str], dim: int = 32, patches: tuple[int, int] = (16, 48),
                seed: int = 0) -> None:
    """Write random-feature bags ``<slide>.h5`` (uninformative WSI input, e.g. to run the fusion models on
    omics-only cohorts). Existing files are kept."""
    from pathlib import Path

    from mstar.features.writer import write_features_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for slide in slides:
        n = int(rng.integers(patches[0], patches[1] + 1))
        feats = rng.standard_normal((n, dim)).astype(np.float32)
        if (folder / f"{slide}.h5").exists():
            continue
        coords = np.stack([np.arange(n) * 256, np.zeros(n)], 1).astype(np.int64)
        write_features_file(folder / f"{slide}.h5", feats, coords, {"encoder": "random", "dim": dim})
