"""Evaluation units: validation carved from CV folds, and the low-label training subsample."""

from __future__ import annotations

import pandas as pd
import pytest

from mstar.data.manifest import read_manifest
from mstar.errors import MstarError
from mstar.tasks.config import TrainConfig
from mstar.tasks.units import make_units


@pytest.fixture
def folds_manifest(tmp_path):
    n = 80
    table = pd.DataFrame({"case": [f"C{i}" for i in range(n)], "slide": [f"S{i}" for i in range(n)],
                          "label": ["a" if i % 4 else "b" for i in range(n)],
                          "fold1": ["test" if i % 5 == 0 else "train" for i in range(n)],
                          "fold2": ["test" if i % 5 == 1 else "train" for i in range(n)]})
    table.to_csv(tmp_path / "m.csv", index=False)
    return read_manifest(tmp_path / "m.csv")


def test_train_fraction_keeps_a_stratified_share_of_training_cases_and_leaves_val_and_test(folds_manifest):
    full = make_units(folds_manifest, "clean", runs=1, seed=0, val_fraction=0.15)
    low = make_units(folds_manifest, "clean", runs=1, seed=0, val_fraction=0.15, train_fraction=0.25)
    for a, b in zip(full, low):
        assert (a.split[a.split != "train"] == b.split[a.split != "train"]).all()  # val and test unchanged
        kept = b.split == "train"
        assert set(b.split[a.split == "train"]) == {"train", "unused"}
        labels = folds_manifest.table["label"]
        for label in ("a", "b"):
            n_train = int(((a.split == "train") & (labels == label)).sum())
            assert int((kept & (labels == label)).sum()) == max(1, round(0.25 * n_train))
    again = make_units(folds_manifest, "clean", runs=1, seed=0, val_fraction=0.15, train_fraction=0.25)
    assert all((x.split == y.split).all() for x, y in zip(low, again))  # seeded
    other = make_units(folds_manifest, "clean", runs=1, seed=1, val_fraction=0.15, train_fraction=0.25)
    assert any((x.split != y.split).any() for x, y in zip(low, other))
    with pytest.raises(MstarError, match="'train_fraction' must be in"):
        TrainConfig(manifest="m.csv", features="f", train_fraction=0.0).validate()
