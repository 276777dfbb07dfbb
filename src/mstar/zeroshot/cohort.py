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

from mstar.data.manifest import read_manifest, slide_ids
from mstar.errors import MstarError


@dataclass
class EvalCohort:
    """``table`` has columns ``case``, ``slides`` (list), ``label`` (str), ``y`` (class index), ``split``."""

    path: Path
    table: pd.DataFrame
    classes: list[str]

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name]


def _label_column(table: pd.DataFrame, label_column: str, path: Path) -> str:
    want = ("label", "study") if label_column == "auto" else (label_column.lower(),)
    found = next((c for c in want if c in table.columns), None)
    if found is None:
        raise MstarError(f"{path}: no label column (looked for {', '.join(want)}); pass --label-column")
    return found


def read_eval_table(path: str | os.PathLike, label_column: str = "auto") -> pd.DataFrame:
    """``case, slides, label, split`` per case (see the module docstring for the accepted schemas)."""
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: manifest not found")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {c.lower().strip(): c for c in raw.columns}
    has_split = "fold" in cols or "split" in cols or any(c.startswith("fold") and c[4:].isdigit() for c in cols)
    if has_split:
        manifest = read_manifest(path)
        table = manifest.table.copy()
        if manifest.folds:
            table["split"] = table[manifest.folds[0]]
    else:
        slide_col = next((cols[c] for c in ("slide", "slide_id", "wsi") if c in cols), None)
        if slide_col is None:
            raise MstarError(f"{path}: needs a 'slide' (or 'slide_id') column")
        case_col = next((cols[c] for c in ("case", "case_id", "id") if c in cols), slide_col)
        table = pd.DataFrame({"case": raw[case_col].astype(str), "slides": raw[slide_col].map(slide_ids),
                              "split": "test"})
        for low, orig in cols.items():
            if low not in table.columns:
                table[low] = raw[orig]
    column = _label_column(table, label_column, path)
    table["label"] = table[column].astype(str).str.strip()
    if (table["label"] == "").any():
        raise MstarError(f"{path}: empty label in column '{column}'")
    if table["case"].duplicated().any():
        raise MstarError(f"{path}: case ids appear twice; join a case's slides with ';' in one row")
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
