"""MCAT-lineage cohort files: the wide clinical + omics table as a survival manifest, and fold folders.

- Wide table (PORPOISE/MCAT TCGA layout): one row per slide with ``case_id, slide_id, survival_months,
  censorship`` (1 = event **not** observed). Rows of one case are its slides; survival is per case (the
  first row's values).
- Fold folder: ``splits_{k}.csv`` with columns ``train`` and ``val`` (optionally ``test``) listing case ids
  (MCAT/PORPOISE 5-fold case-level CV). Each file becomes a fold column ``fold{k}`` of the manifest: ``train``
  stays train; with no ``test`` column the fold's ``val`` cases are the held-out evaluation set (``test``)
  and the clean protocol carves its validation set from the fold's training cases; cases in no list of a
  fold take no part in it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from mstar.data.manifest import Manifest, read_manifest, slide_ids
from mstar.data.rna import table_columns
from mstar.data.tables import read_csv_table
from mstar.errors import MstarError, some

log = logging.getLogger(__name__)

WIDE_COLUMNS = ("case_id", "slide_id", "survival_months", "censorship")
SURVIVAL_TABLE = ("survival table", "a survival manifest (Study,ID,Event,Status,WSI,split) or a wide TCGA "
                                    "table (case_id,slide_id,survival_months,censorship, one row per slide)")
FOLD_FILE = ("fold file", "columns train,val[,test] of case ids (MCAT layout)")


def is_wide_table(path: str | os.PathLike) -> bool:
    """True when ``path`` is a CSV with the wide table's clinical columns."""
    path = Path(path)
    if not path.is_file() or not path.name.lower().removesuffix(".gz").endswith((".csv", ".tsv", ".txt")):
        return False
    return set(WIDE_COLUMNS) <= set(table_columns(path, what=SURVIVAL_TABLE))


def read_wide_manifest(path: str | os.PathLike) -> Manifest:
    """The wide table's survival columns as a :class:`Manifest` (no split: add folds with
    :func:`apply_folds`)."""
    path = Path(path)
    sep = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    raw = read_csv_table(path, *SURVIVAL_TABLE, sep=sep, usecols=list(WIDE_COLUMNS),
                         dtype={"case_id": str, "slide_id": str})
    if raw.empty:
        raise MstarError(f"{path}: the table has no rows")
    for col in ("survival_months", "censorship"):
        if raw[col].isna().any():
            raise MstarError(f"{path}: column {col} has missing values in rows "
                             f"{list(raw.index[raw[col].isna()][:5] + 2)}")
    if not raw["censorship"].isin([0, 1]).all():
        raise MstarError(f"{path}: column censorship must be 0 (death observed) or 1 (censored)")
    if (raw["survival_months"] < 0).any():
        raise MstarError(f"{path}: column survival_months has negative values")
    cases = raw.groupby("case_id", sort=False)
    first = cases.first()
    table = pd.DataFrame({"case": first.index.astype(str),
                          "slides": [sum((slide_ids(s) for s in g), []) for _, g in cases["slide_id"]],
                          "time": first["survival_months"].astype(float).to_numpy(),
                          "event": (first["censorship"].astype(int) == 0).to_numpy()})
    return Manifest(path=path, kind="survival", table=table.reset_index(drop=True))


def read_fold_dir(path: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """``splits_{k}.csv`` files -> ``{"fold{k}": {"train": [...], "val": [...], ("test": [...])}}`` by k.

    Raises:
        MstarError: Missing folder or files, missing ``train``/``val`` columns, a case in two lists.
    """
    path = Path(path)
    if not path.is_dir():
        raise MstarError(f"{path}: folds folder not found (--folds: a folder of splits_{{k}}.csv)")
    files = sorted((p for p in path.iterdir() if re.fullmatch(r"splits_\d+\.csv", p.name)),
                   key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise MstarError(f"{path}: no splits_{{k}}.csv files (MCAT layout: columns train,val of case ids)")
    folds = {}
    for f in files:
        frame = read_csv_table(f, *FOLD_FILE, dtype=str)
        missing = [c for c in ("train", "val") if c not in frame.columns]
        if missing:
            raise MstarError(f"{f}: missing column(s) {missing}; expected train,val[,test] of case ids")
        lists = {c: [s.strip() for s in frame[c].dropna() if s.strip()]
                 for c in ("train", "val", "test") if c in frame.columns}
        seen: dict[str, str] = {}
        for name, ids in lists.items():
            for case in ids:
                if case in seen and seen[case] != name:
                    raise MstarError(f"{f}: case {case} is in both '{seen[case]}' and '{name}'")
                seen[case] = name
        folds[f"fold{f.stem.split('_')[1]}"] = lists
    return folds


def apply_folds(manifest: Manifest, folds: dict[str, dict[str, list[str]]],
                where: str = "--folds") -> Manifest:
    """A copy of ``manifest`` whose evaluation units are ``folds`` (see the module docstring)."""
    table = manifest.table.copy()
    known = set(table["case"])
    for name, lists in folds.items():
        rename = {"train": "train", "val": "val", "test": "test"} if "test" in lists else \
            {"train": "train", "val": "test"}
        split = pd.Series("", index=table.index, dtype=object)
        absent: list[str] = []
        for column, ids in lists.items():
            absent += [c for c in ids if c not in known]
            split[table["case"].isin(set(ids))] = rename[column]
        if absent:
            log.warning("%s %s: %d case(s) of the fold are not in the cohort (no features/omics?) and are "
                        "left out: %s", where, name, len(absent), some(absent))
        unplaced = table.loc[split == "", "case"].tolist()
        if unplaced:
            log.warning("%s %s: %d case(s) of the cohort are in none of the fold's lists and take no part in "
                        "it: %s", where, name, len(unplaced), some(unplaced))
        for column, role in (("train", "train"), ("val" if "test" not in lists else "test", "test")):
            if (split == role).any():
                continue
            ids = lists.get(column, [])
            if not ids:  # the column itself is empty: nothing to do with the case ids
                raise MstarError(f"{where} {name}: its '{column}' column is empty; every fold needs "
                                 f"{'training' if role == 'train' else 'evaluation'} cases")
            raise MstarError(f"{where} {name}: none of its {len(ids)} '{column}' cases is in {manifest.path} "
                             f"(e.g. {ids[0]!r}; the manifest has cases such as {table['case'].iloc[0]!r}); "
                             "do the case ids match?")
        table[name] = split
    return Manifest(path=manifest.path, kind=manifest.kind, table=table, folds=list(folds),
                    rna_column=manifest.rna_column)


def read_survival_cohort(path: str | os.PathLike, folds: str | os.PathLike | None = None) -> Manifest:
    """A survival manifest (upstream CSV, multimodal CSV, or wide TCGA table), with ``folds`` applied.

    Raises:
        MstarError: Not a survival manifest; a wide table without ``folds``.
    """
    if is_wide_table(path):
        manifest = read_wide_manifest(path)
        if folds is None:
            raise MstarError(f"{path}: a wide TCGA table has no train/test split; pass --folds DIR "
                             "(splits_{k}.csv, e.g. tcga_omics/splits/<cohort>)")
    else:
        manifest = read_manifest(path)
        if manifest.kind != "survival":
            raise MstarError(f"{path}: multimodal survival needs a survival manifest (Study,ID,Event,Status,"
                             "WSI,split[,RNA]) or a wide TCGA table (case_id,slide_id,survival_months,"
                             "censorship)")
    return manifest if folds is None else apply_folds(manifest, read_fold_dir(folds))
