"""The evaluation cohort of zero-/few-shot classification: one row per case with its slides, label and split.

Accepted manifests: ``case,slide,label,fold`` (fold/split in train/val/test), the same with ``fold1..K``
columns (the first fold decides; its ``test`` rows are the test set), a survival manifest (its ``Study``
column as the label, or ``--label-column``), or a bare ``case,slide,label`` list whose every row is a test
case (zero-shot needs no training data; give ``--top-j`` since there is no validation split).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mstar.data.manifest import cohort_labels, read_manifest
from mstar.errors import MstarError


@dataclass
class EvalCohort:
    """``table`` has columns ``case``, ``slides`` (list), ``label`` (str), ``y`` (class index), ``split``."""

    path: Path
    table: pd.DataFrame
    classes: list[str]

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name]


def read_eval_table(path: str | os.PathLike, label_column: str = "auto") -> pd.DataFrame:
    """``case, slides, label, split`` per case (see the module docstring for the accepted schemas).

    The manifest is read by :func:`mstar.data.manifest.read_manifest`; its first split decides (a bare list
    without one is all ``test``)."""
    manifest = read_manifest(path, require_split=False)
    table = manifest.table.copy()
    table["label"] = cohort_labels(manifest, label_column)
    split = manifest.first_split()
    table["split"] = "test" if split is None else split
    return table[["case", "slides", "label", "split"]].reset_index(drop=True)


def load_eval_cohort(path: str | os.PathLike, classes: list[str], label_column: str = "auto") -> EvalCohort:
    """The manifest with labels mapped to ``classes`` (the prompt file's order).

    Raises:
        MstarError: A label outside ``classes`` (the prompt check normally catches this first).
    """
    table = read_eval_table(path, label_column)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(table["label"]) - set(index))
    if unknown:
        raise MstarError(f"{path}: labels {unknown} are not among the classes {classes}")
    table["y"] = table["label"].map(index).astype(int)
    return EvalCohort(Path(path), table, list(classes))
