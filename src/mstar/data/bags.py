"""Bags of patch features per case, loaded once and batched with padding masks.

Upstream trains on one bag per step and reads every ``.pt`` from disk each epoch; here every bag is read
once into RAM (float16 by default: half the memory, exact enough for MIL) and mini-batches of several
bags are padded to the longest bag with a boolean mask (True = real patch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mstar.data.feature_dirs import feature_file
from mstar.errors import MstarError
from mstar.features.io import feature_rows, load_features


class BagStore:
    """Features (and coords) of each case: the concatenation of its slides' bags. The one bag loader of mstar.

    Args:
        feature_dir: folder holding ``<slide>.h5``/``.pt`` (see :func:`resolve_feature_dir`).
        cases: case ids, in order (a slide-level store passes slide ids with one slide each).
        slides: slide ids of each case.
        skip_missing: drop cases whose feature files are missing instead of failing.
        dtype: dtype of the bags handed out (and stored in RAM).
        cache: read every bag once into RAM (default); False reads a case's files on every access (cohorts
            beyond RAM), knowing only the shapes up front.
        context: multi-resolution files (:mod:`mstar.features.context`): each patch is its high-power feature
            followed by its low-power context, ``(N, 2D)``.
    """

    def __init__(self, feature_dir: Path, cases: Sequence[str], slides: Sequence[Sequence[str]],
                 skip_missing: bool = False, dtype: torch.dtype = torch.float16, cache: bool = True,
                 context: bool = False):
        missing = [(c, s) for c, ss in zip(cases, slides) for s in ss if feature_file(feature_dir, s) is None]
        if missing and not skip_missing:
            shown = ", ".join(s for _, s in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise MstarError(f"{feature_dir}: no features for {len(missing)} slide(s): {shown}; extract them "
                             "or pass --skip-missing to drop those cases")
        dropped = {c for c, _ in missing}
        self.dropped = sorted(dropped)
        self.feature_dir, self.dtype, self.cache, self.context = feature_dir, dtype, cache, context
        self.cases: list[str] = []
        self.files: list[list[Path]] = []
        self.sizes: list[int] = []
        self.features: list[torch.Tensor] = []
        self.coords: list[np.ndarray] = []
        self.slide_of_patch: list[np.ndarray] = []
        self.dim: int | None = None
        for case, ss in zip(cases, slides):
            if case in dropped:
                continue
            files = [feature_file(feature_dir, s) for s in ss]
            if cache:
                bag, coords, owner = self._read(files)
                n, dim = int(bag.shape[0]), int(bag.shape[1]) if bag.ndim == 2 else 0
                self.features.append(bag)
                self.coords.append(coords)
                self.slide_of_patch.append(owner)
            else:
                rows = [feature_rows(f) for f in files]
                n, dim = sum(r[0] for r in rows), next((r[1] for r in rows if r[0]), 0)
                dim *= 2 if context else 1
            self._check_dim(case, n, dim)
            self.cases.append(case)
            self.files.append(files)
            self.sizes.append(n)
        self.index = {c: i for i, c in enumerate(self.cases)}

    def _check_dim(self, case: str, n: int, dim: int) -> None:
        if not n:
            return
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise MstarError(f"{self.feature_dir}: case {case} has {dim}-d features, others {self.dim}-d; "
                             "were they extracted with different encoders?")

    def _read(self, files: list[Path]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        feats, coords, owner = [], [], []
        for k, path in enumerate(files):
            f, xy, _ = load_features(path)
            if self.context:  # multi-resolution: [high-power | low-power context] per tile, (N, 2D)
                from mstar.features.context import load_context

                f = np.concatenate([np.asarray(f, np.float32), load_context(path)], axis=1)
            feats.append(torch.as_tensor(np.asarray(f), dtype=self.dtype))
            coords.append(np.asarray(xy).reshape(-1, 2))
            owner.append(np.full(len(f), k, np.int16))
        bag = torch.cat(feats) if feats else torch.zeros(0, 0, dtype=self.dtype)
        return (bag, np.concatenate(coords) if coords else np.zeros((0, 2), np.int64),
                np.concatenate(owner) if owner else np.zeros(0, np.int16))

    def __len__(self) -> int:
        return len(self.cases)

    def bag(self, case: str) -> torch.Tensor:
        """``(N, D)`` features of ``case`` (its slides concatenated in manifest order)."""
        i = self.index[case]
        return self.features[i] if self.cache else self._read(self.files[i])[0]

    def empty_cases(self) -> list[str]:
        """Cases whose bags hold no patch (slides without tissue tiles)."""
        return [c for c, n in zip(self.cases, self.sizes) if n == 0]

    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features)


class BagDataset(Dataset):
    """(features, target, case) per case; random patch subsets of at most ``max_patches`` when training."""

    def __init__(self, store: BagStore, cases: Sequence[str], targets: Sequence,
                 max_patches: int | None = None, train: bool = False, seed: int = 0):
        self.store, self.cases, self.targets = store, list(cases), list(targets)
        self.max_patches, self.train = max_patches, train
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int):
        bag = self.store.bag(self.cases[i])  # (N, D)
        if self.train and self.max_patches and bag.shape[0] > self.max_patches:
            keep = torch.randperm(bag.shape[0], generator=self.generator)[: self.max_patches]
            bag = bag[keep.sort().values]
        return bag, self.targets[i], self.cases[i]


def collate_bags(batch):
    """Pad bags to the longest: ``x`` (B, N, D) float32, ``mask`` (B, N) bool, targets, case ids."""
    bags, targets, cases = zip(*batch)
    n_max = max(1, max(b.shape[0] for b in bags))
    dim = next((b.shape[1] for b in bags if b.ndim == 2 and b.shape[0]), 1)
    x = torch.empty(len(bags), n_max, dim)  # (B, N, D); only the padding is zeroed (a full fill costs a copy)
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool)  # (B, N)
    for i, b in enumerate(bags):
        n = b.shape[0]
        if n:
            x[i, :n] = b
            mask[i, :n] = True
        x[i, n:] = 0.0
    if isinstance(targets[0], torch.Tensor):
        target = torch.stack(targets)
    else:
        target = torch.as_tensor(np.asarray(targets))
    return x, mask, target, list(cases)
