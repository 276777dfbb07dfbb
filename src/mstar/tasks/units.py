"""Evaluation units: the fixed train/val/test split, or each cross-validation fold, times repeated runs.

Under the clean protocol (default) every unit has a validation set that selects the epoch and an
untouched test set. CV folds given as train/test only get a validation set carved from their training
rows (stratified, seeded). ``train_fraction`` < 1 keeps that share of each unit's training cases
(stratified, seeded; the rest are marked ``unused``): the low-label setting, with val and test unchanged.
The upstream protocol selects on val ∪ test (fixed split) or on the test fold
(CV), as the upstream scripts do; results are then optimistic and labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mstar.data.manifest import Manifest


@dataclass
class Unit:
    name: str                 # "fixed", "fold1", ... with "-run<r>" when repeated
    split: pd.Series          # train / val / test per manifest row (index aligned with the table)
    selection: tuple[str, ...]  # splits scored to select the epoch
    seed: int


def _carve_validation(split: pd.Series, strata: pd.Series, fraction: float, seed: int) -> pd.Series:
    out = split.copy()
    rng = np.random.default_rng(seed)
    train = split.index[split == "train"]
    for _, idx in pd.Series(train, index=train).groupby(strata.loc[train].to_numpy()):
        idx = idx.to_numpy().copy()
        rng.shuffle(idx)
        n_val = int(round(fraction * len(idx)))
        out.loc[idx[:n_val]] = "val"
    return out


def _subsample_train(split: pd.Series, strata: pd.Series, fraction: float, seed: int) -> pd.Series:
    """Keep ``fraction`` of each stratum's training rows (at least one); the others become ``unused``."""
    out = split.copy()
    rng = np.random.default_rng(seed + 7919)  # a stream apart from the validation carve
    train = split.index[split == "train"]
    for _, idx in pd.Series(train, index=train).groupby(strata.loc[train].to_numpy()):
        idx = np.sort(idx.to_numpy())
        rng.shuffle(idx)
        n_keep = max(1, int(round(fraction * len(idx))))
        out.loc[idx[n_keep:]] = "unused"
    return out


def make_units(manifest: Manifest, protocol: str, runs: int, seed: int, val_fraction: float,
               train_fraction: float = 1.0) -> list[Unit]:
    """Every (split scheme, run) unit of a manifest."""
    table = manifest.table
    strata = table["label"] if "label" in table else table["event"].astype(str)
    units = []
    for scheme in manifest.split_names():
        base = manifest.split_of(scheme).copy()
        for r in range(runs):
            split = base
            if protocol == "clean" and not (base == "val").any():
                split = _carve_validation(base, strata, val_fraction, seed + r)
            if train_fraction < 1:
                split = _subsample_train(split, strata, train_fraction, seed + r)
            if protocol == "upstream":
                selection = ("val", "test") if (base == "val").any() else ("test",)
            else:
                selection = ("val",)
            name = scheme if runs == 1 else f"{scheme}-run{r}"
            units.append(Unit(name=name, split=split, selection=selection, seed=seed + r))
    return units
