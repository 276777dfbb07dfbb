"""RNA-seq tables in the layouts users already have, read into one cases x genes frame.

Layouts (``read_rna_table`` picks one from the path and the columns; ``layout=`` forces it):

- ``genes_x_cases``: CSV/TSV (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``) or parquet; the first
  column holds gene symbols (any header), every other column is one case. The synthetic cohort's
  ``rna/expression.csv`` and most expression matrices look like this.
- ``per_case``: a folder of ``<case>.csv`` files with columns ``Gene,Value`` (upstream mSTAR's
  multimodal-survival format; an ``Index`` column is ignored). The case id is the file stem.
- ``wide``: a clinical table with one row per slide, a ``case_id`` column and ``<GENE>_rnaseq`` (and
  ``_cnv``, ``_mut``) columns, like the PORPOISE/MCAT TCGA tables. ``modality`` picks the suffix. Rows that
  share a ``case_id`` are slides of one patient: the **first** row is kept (in the TCGA tables these rows
  are identical; a warning counts the cases whose rows disagree).
- ``cases_x_genes``: first column case ids, other columns genes (only when asked for explicitly).

The result is float32, indexed by case id (``case_id``), one column per gene symbol; values absent from
the source are NaN. ``match_genes`` aligns it to a model's gene vocabulary with a mask.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.data.tables import check_not_empty, read_csv_table
from mstar.errors import MstarError, some

LAYOUTS = ("auto", "genes_x_cases", "cases_x_genes", "per_case", "wide")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
RNA_TABLE = ("RNA table", "a header row, then one row per gene (gene symbol, one value per case) or per case "
                          "(case_id, <GENE>_rnaseq columns)")
GENE_VALUES = ("per-case RNA file", "columns Gene,Value with one row per gene")


def _strip_gz(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _read_frame(path: Path, usecols=None, nrows: int | None = None,
                what: tuple[str, str] = RNA_TABLE, ids: str | int | None = None) -> pd.DataFrame:
    """The table at ``path``; ``what`` (name, expected content) words the error for an empty file; the
    column ``ids`` (a name, or 0 for the first column) is read as text, so case ids such as "001" keep
    their zeros."""
    name = _strip_gz(path)
    if name.endswith(".parquet"):
        check_not_empty(path, *what)
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise MstarError(f"{path}: reading parquet needs pyarrow (or fastparquet), which is not "
                             "installed; install it or save the table as CSV/TSV") from err
    if not name.endswith(_TEXT_SUFFIXES):
        raise MstarError(f"{path}: unknown RNA table format; use .csv, .tsv, .txt (optionally .gz), "
                         ".parquet, or a folder of per-case Gene,Value CSVs")
    sep = "," if name.endswith(".csv") else "\t"
    if ids == 0:
        ids = read_csv_table(path, *what, sep=sep, nrows=0).columns[0]
    return read_csv_table(path, *what, sep=sep, usecols=usecols, nrows=nrows,
                          dtype=None if ids is None else {ids: str})


def _numeric(frame: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise MstarError(f"{path}: {what} {bad[0]!r} is not numeric ({len(bad)} such); check the layout "
                         "(first column = gene symbols, one numeric column per case)")
    return frame.astype(np.float32)


def _dedupe_genes(out: pd.DataFrame, path: Path) -> pd.DataFrame:
    dup = out.columns.duplicated()
    if dup.any():
        names = out.columns[dup].unique().tolist()
        warnings.warn(f"{path}: {len(names)} duplicated gene symbols averaged ({some(names, 3)})",
                      stacklevel=3)
        out = out.T.groupby(level=0, sort=False).mean().T.astype(np.float32)
    return out


def _finish(out: pd.DataFrame, path: Path) -> pd.DataFrame:
    if out.empty:
        raise MstarError(f"{path}: the RNA table holds no cases or no genes")
    out = out.astype(np.float32)
    out.index = out.index.astype(str)
    out.columns = out.columns.astype(str)
    out.index.name, out.columns.name = "case_id", "gene"
    if out.index.duplicated().any():
        raise MstarError(f"{path}: {int(out.index.duplicated().sum())} duplicated case ids; keep one row per "
                         "case (or use the wide layout, which keeps each case's first row)")
    return _dedupe_genes(out, path)


def _read_per_case(folder: Path) -> pd.DataFrame:
    files = sorted(p for p in folder.iterdir() if p.is_file() and _strip_gz(p).endswith(_TEXT_SUFFIXES))
    if not files:
        raise MstarError(f"{folder}: no per-case RNA files (<case>.csv with columns Gene,Value) found")
    series = {}
    for path in files:
        name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
        try:
            series[name.rsplit(".", 1)[0]] = read_gene_values(path)
        except MstarError as exc:
            subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
            try:  # a table of many cases, not one case's Gene,Value
                wide = len(_read_frame(path, nrows=1, what=GENE_VALUES).columns) > 2
            except MstarError:
                wide = False
            if not (wide or subfolders):
                raise
            hint = (f"; a whole table is passed as the file itself (--rna {path}), per-case files as their "
                    f"folder{f' (here: {folder / subfolders[0]}?)' if subfolders else ''}")
            raise MstarError(f"{exc} (read as one case of the per-case folder {folder}){hint}") from None
    return pd.DataFrame(series).T


def read_gene_values(path: str | os.PathLike) -> pd.Series:
    """One per-case RNA file (upstream multimodal CSV: columns ``Gene,Value``) as a gene -> value series
    (duplicated genes averaged)."""
    path = Path(path)
    frame = _read_frame(path, what=GENE_VALUES)
    cols = {c.lower(): c for c in frame.columns}
    if "gene" not in cols or "value" not in cols:
        raise MstarError(f"{path}: per-case RNA file needs columns Gene,Value; found {list(frame.columns)}")
    values = _numeric(frame[[cols["value"]]], path, "column")[cols["value"]]
    values.index = frame[cols["gene"]].astype(str)
    dup = values.index[values.index.duplicated()].unique().tolist()
    if dup:
        warnings.warn(f"{path}: {len(dup)} duplicated gene symbols averaged ({some(dup, 3)})", stacklevel=3)
    return values.groupby(level=0, sort=False).mean()


def table_columns(path: str | os.PathLike, what: tuple[str, str] = RNA_TABLE) -> list[str]:
    """The column names of a CSV/TSV/TXT table (optionally gzipped) without reading its rows; ``what``
    (the file's name and expected content) words the error for an empty file."""
    return [str(c) for c in _read_frame(Path(path), nrows=0, what=what).columns]


def _read_wide(path: Path, modality: str) -> pd.DataFrame:
    suffix = f"_{modality}"
    frame = _read_frame(path, usecols=lambda c: c == "case_id" or str(c).endswith(suffix), ids="case_id")
    if "case_id" not in frame.columns:
        raise MstarError(f"{path}: a wide RNA table needs a 'case_id' column (one row per slide)")
    genes = [c for c in frame.columns if c.endswith(suffix)]
    if not genes:
        raise MstarError(f"{path}: no '*{suffix}' columns; pass another modality (rnaseq, cnv, mut)")
    values = _numeric(frame[genes], path, "column")
    values.columns = [c[: -len(suffix)] for c in genes]
    values.index = frame["case_id"].astype(str)
    first = values[~values.index.duplicated(keep="first")]
    again = first.loc[values.index].to_numpy()  # (rows, G): each row's case-first row
    rows = values.to_numpy()
    differs = ((rows != again) & ~(np.isnan(rows) & np.isnan(again))).any(axis=1)
    if differs.any():
        warnings.warn(f"{path}: {values.index[differs].nunique()} cases have slide rows with different "
                      f"{modality} values; the first row of each case is used", stacklevel=3)
    return first


def read_rna_table(path: str | os.PathLike, layout: str = "auto", modality: str = "rnaseq") -> pd.DataFrame:
    """Read an RNA table into a cases x genes float32 frame.

    Args:
        path: A table file (CSV/TSV/TXT, optionally gzipped, or parquet) or a folder of per-case files.
        layout: One of :data:`LAYOUTS`; ``auto`` picks ``per_case`` for folders, ``wide`` when columns end
            in ``_<modality>``, and ``genes_x_cases`` otherwise.
        modality: Column suffix of wide tables (``rnaseq``, ``cnv``, ``mut``).

    Returns:
        Frame indexed by case id (``case_id``), one float32 column per gene; NaN where not measured.

    Raises:
        MstarError: Missing path, unknown format, wrong or non-numeric columns, empty table.
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise MstarError(f"RNA layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
    if not path.exists():
        raise MstarError(f"RNA table {path} does not exist")
    if path.is_dir() or layout == "per_case":
        if not path.is_dir():
            raise MstarError(f"{path}: the per_case layout needs a folder of <case>.csv files")
        return _finish(_read_per_case(path), path)
    if layout == "auto":
        header = _read_frame(path, nrows=0).columns  # parquet: the whole table (no cheap header read)
        layout = "wide" if any(str(c).endswith(f"_{modality}") for c in header) else "genes_x_cases"
    if layout == "wide":
        return _finish(_read_wide(path, modality), path)
    frame = _read_frame(path, ids=0)
    if frame.shape[1] < 2:
        raise MstarError(f"{path}: an RNA table needs an id column and at least one value column")
    ids = frame.iloc[:, 0].astype(str)
    values = _numeric(frame.iloc[:, 1:], path, "column")
    values.index = ids
    return _finish(values.T if layout == "genes_x_cases" else values, path)



@dataclass
class GeneMatch:
    """A table aligned to a gene vocabulary.

    Attributes:
        values: ``(C, G)`` float32 in vocabulary order; 0 where masked.
        mask: ``(C, G)`` bool, True where the gene was measured for that case (in the table and not NaN).
        cases: The ``C`` case ids, in table order.
        genes: The vocabulary (``G`` symbols).
        n_matched: Vocabulary genes found among the table's columns.
        n_unseen: Table genes absent from the vocabulary (ignored).
        missing: Vocabulary genes absent from the table (masked for every case).
    """

    values: np.ndarray
    mask: np.ndarray
    cases: list[str]
    genes: list[str]
    n_matched: int
    n_unseen: int
    missing: list[str]


def match_genes(table: pd.DataFrame, vocabulary: list[str]) -> GeneMatch:
    """Align a cases x genes table to ``vocabulary``: unseen genes are dropped, missing ones masked.

    Args:
        table: Output of :func:`read_rna_table` (cases x genes).
        vocabulary: The model's gene symbols, in model order (duplicates are an error).

    Returns:
        The aligned values and mask; a warning gives the number of ignored table genes.
    """
    vocabulary = [str(g) for g in vocabulary]
    if len(set(vocabulary)) != len(vocabulary):
        raise MstarError("gene vocabulary holds duplicated symbols; make it unique")
    columns = [str(c) for c in table.columns]
    known = set(vocabulary)
    n_unseen = sum(c not in known for c in columns)
    if n_unseen:
        warnings.warn(f"{n_unseen} of {len(columns)} table genes are not in the gene vocabulary and are "
                      "ignored", stacklevel=2)
    aligned = table.set_axis(columns, axis=1).reindex(columns=vocabulary)
    values = aligned.to_numpy(dtype=np.float32)  # (C, G)
    mask = ~np.isnan(values)  # (C, G)
    present = set(columns)
    missing = [g for g in vocabulary if g not in present]
    if len(missing) == len(vocabulary):
        raise MstarError("no gene of the RNA table is in the gene vocabulary; check the gene symbols "
                         f"(table starts {columns[:3]}, vocabulary starts {vocabulary[:3]})")
    return GeneMatch(values=np.where(mask, values, 0.0).astype(np.float32), mask=mask,
                     cases=[str(c) for c in table.index], genes=vocabulary,
                     n_matched=len(vocabulary) - len(missing), n_unseen=n_unseen, missing=missing)


@dataclass
class SignatureGroups:
    """MCAT's gene families matched against a table.

    Attributes:
        groups: Group name → matched column names (file order, duplicates removed).
        counts: Group name → ``(matched, listed)`` (listed = unique genes the file names in that group).
    """

    groups: dict[str, list[str]]
    counts: dict[str, tuple[int, int]]


def read_signatures(path: str | os.PathLike, columns: list[str] | pd.Index,
                    suffixes: tuple[str, ...] = ("",)) -> SignatureGroups:
    """Read an MCAT ``signatures.csv`` (one column per family) and match it to a table's columns.

    Args:
        path: The signatures CSV (MCAT: 6 families; empty cells pad the shorter columns).
        columns: Column names to match, e.g. ``read_rna_table(...).columns`` (plain symbols), or the raw
            columns of a wide table together with ``suffixes``.
        suffixes: A gene ``G`` matches every column ``G + s`` present; MCAT used
            ``("_mut", "_cnv", "_rnaseq")`` on the wide TCGA tables.

    Returns:
        The matched groups and their counts. Groups with no match keep an empty list.
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"signatures file {path} does not exist")
    frame = read_csv_table(path, "signatures file", "one column per gene family (a header row of family "
                           "names, then gene symbols)", dtype=str)
    if frame.shape[1] == 0:
        raise MstarError(f"{path}: the signatures file has no columns (one column per gene family)")
    available = {str(c) for c in columns}
    groups, counts = {}, {}
    for name in frame.columns:
        listed = list(dict.fromkeys(g.strip() for g in frame[name].dropna() if g.strip()))
        groups[name] = [g + s for g in listed for s in suffixes if g + s in available]
        counts[name] = (len(groups[name]), len(listed))
    if not any(groups.values()):
        raise MstarError(f"{path}: no signature gene is among the table's columns; check the gene symbols "
                         "or the suffixes")
    return SignatureGroups(groups=groups, counts=counts)
