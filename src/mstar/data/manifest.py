"""Cohort manifests in the CSV schemas users already have (upstream mSTAR / CLAM / MCAT lineage).

Recognised schemas (columns, case-insensitive; extra columns are kept):

- classification: ``case,slide,label,fold`` with fold in {train, val, test}; or ``case,slide,label`` plus
  ``fold1..foldK`` in {train, test} for k-fold cross-validation;
- survival: ``Study,ID,Event,Status,WSI,split`` (Event = months, Status 1 = death observed,
  split in {train, validation|val, test});
- multimodal survival: the survival columns plus ``RNA`` (a per-case ``Gene,Value`` CSV file name).

Commands that need no split (zero-shot on a bare list, embedding) or no label (embedding) relax those
requirements (``require_split``, ``require_label``): a bare ``case_id,slide_id[,label]`` list is then a
cohort.

Every schema is normalised to one frame with columns ``case``, ``slides`` (list of slide ids; several
slides of a case are joined by ``;`` in the CSV and their bags concatenated), ``split`` (train/val/test,
or absent under cross-validation or in a bare list), and ``label`` or ``time``/``event``. This is the one
manifest reader of mstar: every stage reads cohorts through it (:func:`read_manifest`,
:meth:`Manifest.first_split`, :func:`cohort_labels`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.data.tables import read_csv_table
from mstar.errors import MstarError

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
SLIDE_SUFFIXES = (".pt", ".h5", ".svs", ".tif", ".tiff", ".ndpi", ".mrxs")


def slide_ids(cell: object) -> list[str]:
    """``'a.pt;b.pt'`` -> ``['a', 'b']`` (suffixes of feature/slide files are stripped)."""
    out = []
    for part in str(cell).split(";"):
        part = part.strip()
        for suffix in SLIDE_SUFFIXES:
            if part.lower().endswith(suffix):
                part = part[: -len(suffix)]
                break
        if part:
            out.append(part)
    return out


@dataclass
class Manifest:
    """A normalised cohort table. ``folds`` lists CV fold columns (``fold1``...) when the CSV has them."""

    path: Path
    kind: str                      # "classification" | "survival" | "slides" (no label)
    table: pd.DataFrame
    folds: list[str] = field(default_factory=list)
    rna_column: str | None = None

    @property
    def has_split(self) -> bool:
        """True when the manifest assigns cases to train/val/test (a split column or fold columns)."""
        return bool(self.folds) or "split" in self.table

    @property
    def classes(self) -> list[str]:
        """Sorted class names (classification only)."""
        return sorted(self.table["label"].astype(str).unique(), key=_natural_key)

    def split_names(self) -> list[str]:
        """Evaluation units: ``['fixed']`` for a train/val/test column, else the fold columns."""
        return self.folds or ["fixed"]

    def split_of(self, unit: str) -> pd.Series:
        """The train/val/test assignment of every row for one evaluation unit."""
        return self.table["split"] if unit == "fixed" else self.table[unit]

    def first_split(self) -> pd.Series | None:
        """The split of the first evaluation unit (the fixed split, or ``fold1``); None without one.

        Commands that use one split (pretraining's hold-out, zero-/few-shot, report generation) take this
        one, so every stage reads the same cases as train, val and test."""
        if not self.has_split:
            return None
        return self.split_of(self.split_names()[0]).copy()


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _normalise_split(values: pd.Series, path: Path, column: str) -> pd.Series:
    lowered = values.astype(str).str.strip().str.lower()
    unknown = sorted(set(lowered) - set(SPLIT_ALIASES))
    if unknown:
        raise MstarError(f"{path}: column '{column}' has unknown values {unknown[:5]}; use train/val/test "
                         "(validation is accepted for val)")
    return lowered.map(SPLIT_ALIASES)


def read_manifest(path: str | os.PathLike, require_split: bool = True,
                  require_label: bool = True) -> Manifest:
    """Read and validate a manifest CSV; raise :class:`MstarError` naming the file and the problem.

    Args:
        path: The CSV.
        require_split: Fail without a split column (``fold``/``split`` or ``fold1..K``).
        require_label: Fail without a label (classification) or survival columns; without this, any table
            with a slide column (``slide``, ``slide_id`` or ``wsi``) is a cohort of kind ``slides``.
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: manifest not found")
    raw = read_csv_table(path, "manifest", "a header line (case,slide,label,fold or another schema of the "
                         "README) and one row per slide", dtype=str, keep_default_na=False)
    if raw.empty:
        raise MstarError(f"{path}: the manifest has no rows")
    cols = {c.lower().strip(): c for c in raw.columns}
    if {"event", "status", "wsi"} <= set(cols) and ("id" in cols):
        return _survival(path, raw, cols)
    if {"slide", "label"} <= set(cols) or {"slide_id", "label"} <= set(cols):
        return _classification(path, raw, cols, require_split, require_label)
    if not require_label and any(c in cols for c in ("slide", "slide_id", "wsi")):
        return _classification(path, raw, cols, require_split, require_label)
    survival = ("id", "event", "status", "wsi")
    near = sum(c in cols for c in survival)
    if near >= 2:  # most of the survival schema: say which of its columns is missing
        missing = [name for name, c in zip(("ID", "Event", "Status", "WSI"), survival) if c not in cols]
        raise MstarError(f"{path}: a survival manifest needs the column(s) {', '.join(missing)} (has "
                         f"{list(raw.columns)}; expected Study,ID,Event,Status,WSI,split)")
    seps = {";": "';'", "\t": "tab", "|": "'|'"}
    one = raw.columns[0] if len(raw.columns) == 1 else ""
    other = next((name for sep, name in seps.items() if sep in one), None)
    hint = f" (the file looks {other}-separated; save it with commas)" if other else ""
    raise MstarError(f"{path}: unrecognised columns {list(raw.columns)}{hint}; expected "
                     "case,slide,label,fold (classification) or Study,ID,Event,Status,WSI,split (survival)")


def _classification(path: Path, raw: pd.DataFrame, cols: dict, require_split: bool = True,
                    require_label: bool = True) -> Manifest:
    slide_col = next(cols[c] for c in ("slide", "slide_id", "wsi") if c in cols)
    case_col = next((cols[c] for c in ("case", "case_id", "id") if c in cols), slide_col)
    table = pd.DataFrame({"case": raw[case_col].astype(str), "slides": raw[slide_col].map(slide_ids)})
    if "label" in cols:
        table["label"] = raw[cols["label"]].astype(str).str.strip()
        if require_label:  # a reader that needs no labels (predict --cases, embed) takes any
            _check_labels(path, "label", table["label"])
    folds = sorted((c for c in cols if re.fullmatch(r"fold\d+", c)), key=_natural_key)
    if "fold" in cols or "split" in cols:
        column = cols.get("fold", cols.get("split"))
        table["split"] = _normalise_split(raw[column], path, column)
        folds = []
    elif folds:
        for f in folds:
            table[f] = _normalise_split(raw[cols[f]], path, cols[f])
    elif require_split:
        raise MstarError(f"{path}: no split column; add 'fold' (train/val/test) or fold1..foldK columns")
    _check_slides(path, table)
    kind = "classification" if "label" in table else "slides"
    return Manifest(path=path, kind=kind, table=_keep_extra(table, raw, cols), folds=folds)


def _survival(path: Path, raw: pd.DataFrame, cols: dict) -> Manifest:
    if "split" not in cols:
        raise MstarError(f"{path}: survival manifest needs a 'split' column (train/validation/test)")
    try:
        time = pd.to_numeric(raw[cols["event"]])
        status = pd.to_numeric(raw[cols["status"]])
    except ValueError as exc:
        raise MstarError(f"{path}: columns Event (months) and Status (1 = death) must be numeric "
                         f"({exc})") from exc
    if not status.isin([0, 1]).all():
        raise MstarError(f"{path}: column Status must be 0 (censored) or 1 (death observed)")
    bad = ~np.isfinite(time.to_numpy(dtype=float)) | (time < 0).to_numpy()
    if bad.any():
        raise MstarError(f"{path}: column Event (survival months) has negative, missing or infinite values "
                         f"in CSV rows {(np.flatnonzero(bad)[:5] + 2).tolist()}")
    table = pd.DataFrame({"case": raw[cols["id"]].astype(str), "slides": raw[cols["wsi"]].map(slide_ids),
                          "time": time.astype(float), "event": status.astype(int).astype(bool),
                          "split": _normalise_split(raw[cols["split"]], path, cols["split"])})
    if "study" in cols:
        table["study"] = raw[cols["study"]].astype(str)
    rna = None
    if "rna" in cols:
        table["rna"] = raw[cols["rna"]].astype(str)
        rna = "rna"
    _check_slides(path, table)
    return Manifest(path=path, kind="survival", table=table, rna_column=rna)


def _check_slides(path: Path, table: pd.DataFrame) -> None:
    empty = table.index[table["slides"].map(len) == 0]
    if len(empty):
        raise MstarError(f"{path}: rows {list(empty[:5] + 2)} name no slide")
    dup = table["case"][table["case"].duplicated()]
    if len(dup):
        raise MstarError(f"{path}: case ids appear twice ({list(dup[:5])}); join a case's slides with ';' "
                         "in one row")
    owners = table[["case", "slides"]].explode("slides").drop_duplicates()  # a slide twice in one case: once
    shared = owners[owners["slides"].duplicated(keep=False)]
    if len(shared):  # one slide under two cases would be scored twice, possibly in two splits
        slide = shared["slides"].iloc[0]
        cases = " and ".join(shared.loc[shared["slides"] == slide, "case"])
        more = shared["slides"].nunique() - 1
        also = f" (and {more} more shared slides)" if more else ""
        raise MstarError(f"{path}: slide {slide} is listed for cases {cases}{also}; a slide belongs to one "
                         "case")


# cells that pandas and spreadsheets write for a missing value (exact spellings): never a class. "NA" and
# "None" may be real classes (invasion None/Low/High): they only get a warning
MISSING_LABELS = frozenset({"", "nan", "NaN", "-nan", "-NaN", "<NA>", "#N/A", "N/A", "n/a", "NULL", "null"})
AMBIGUOUS_LABELS = frozenset({"NA", "None"})


def _check_labels(path: Path, column: str, labels: pd.Series, what: str = "label") -> None:
    """Refuse empty or missing-value labels ("NaN", "N/A", ...), naming the CSV rows; warn about "NA" and
    "None", which may be classes."""
    ambiguous = labels.isin(AMBIGUOUS_LABELS).to_numpy()
    if ambiguous.any():
        rows = (np.flatnonzero(ambiguous)[:5] + 2).tolist()
        log.warning("%s: %s in column '%s' (CSV rows %s) is read as a class; if it means a missing %s, drop "
                    "those rows", path, " and ".join(sorted(set(labels[ambiguous]))), column, rows, what)
    missing = labels.isin(MISSING_LABELS).to_numpy()
    if missing.any():
        rows = (np.flatnonzero(missing)[:5] + 2).tolist()
        shown = ", ".join(sorted(set(labels[missing]) - {""}))
        raise MstarError(f"{path}: empty or missing {what} in column '{column}', CSV rows {rows}"
                         f"{f' ({shown})' if shown else ''}; drop those rows or give them a class")


def cohort_labels(manifest: Manifest, label_column: str = "auto", required: bool = True,
                  what: str = "label") -> pd.Series:
    """The label of every case: ``label_column``, or (``auto``) ``label``, else ``study`` (survival
    manifests).

    Raises:
        MstarError: ``required`` and no such column, or an empty label in it.
    """
    table = manifest.table
    want = ("label", "study") if label_column == "auto" else (label_column.lower(),)
    found = next((c for c in want if c in table.columns), None)
    if found is None:
        if required:
            raise MstarError(f"{manifest.path}: no {what} column (looked for {', '.join(want)}); pass "
                             "--label-column (or set label_column)")
        return pd.Series("", index=table.index)
    labels = table[found].astype(str).str.strip()
    if required:
        _check_labels(manifest.path, found, labels.reset_index(drop=True), what)
    return labels


def _keep_extra(table: pd.DataFrame, raw: pd.DataFrame, cols: dict) -> pd.DataFrame:
    used = {"case", "case_id", "slide", "slide_id", "label", "fold", "split"}
    for low, orig in cols.items():
        if low not in used and not re.fullmatch(r"fold\d+", low) and low not in table:
            table[low] = raw[orig]
    return table
