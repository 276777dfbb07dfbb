"""Genomic inputs of the multimodal survival models: omic tables, signature groups, train-only scaling.

Sources (``read_omics``):

- a wide clinical + omics table (PORPOISE/MCAT TCGA layout: ``case_id`` and ``<GENE>_rnaseq`` / ``_cnv`` /
  ``_mut`` columns). The columns keep their suffix (``TP53_rnaseq``), as in MCAT; ``modalities`` picks the
  suffixes (default: every one present);
- the upstream multimodal CSV's per-case files: a folder of ``Gene,Value`` CSVs, named by the manifest's
  ``RNA`` column (or ``<case>.csv``);
- any other table :func:`mstar.data.rna.read_rna_table` reads (genes x cases, parquet, ...).

Layouts (``omics_layout``): the 6 signature groups of ``signatures.csv`` (MCAT, MOTCat, CMTA), genes matched
by name to the columns (a gene matches each of its ``_mut``/``_cnv``/``_rnaseq`` columns; each group's
columns sorted by name as MCAT does), or the full omic vector (Porpoise, SNN, late fusion).

Scaling: per-column standardisation fitted on the training cases of each fold only (MCAT fits a
``StandardScaler`` on the training split); values missing in the table become the training mean (0).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.data.rna import read_gene_values, read_rna_table, read_signatures, table_columns
from mstar.errors import MstarError

log = logging.getLogger(__name__)

MODALITIES = ("rnaseq", "cnv", "mut")  # column suffixes of the TCGA tables
MCAT_SUFFIX_ORDER = ("_mut", "_cnv", "_rnaseq")


@dataclass
class OmicsTable:
    """Cases x omic columns (float32, NaN where not measured).

    Attributes:
        values: Indexed by case id; columns ``<GENE>_<modality>`` (wide tables) or gene symbols.
        source: Where it was read from.
        suffixes: What a signature gene name needs appended to match a column (``("",)`` for plain genes).
    """

    values: pd.DataFrame
    source: Path
    suffixes: tuple[str, ...] = ("",)


def wide_modalities(path: str | os.PathLike) -> list[str]:
    """The omic suffixes (``rnaseq``, ``cnv``, ``mut``) a table's header carries; ``[]`` if none."""
    path = Path(path)
    if path.is_dir() or path.name.lower().endswith(".parquet"):
        return []
    header = table_columns(path)
    return [m for m in MODALITIES if any(c.endswith(f"_{m}") for c in header)]


def _read_case_files(folder: Path, files: Mapping[str, str]) -> pd.DataFrame:
    """Per-case ``Gene,Value`` files named by the manifest (``files``: case -> file name or path)."""
    missing = [c for c, f in files.items() if not _case_file(folder, f).is_file()]
    if missing:
        shown = ", ".join(f"{c} ({files[c]})" for c in missing[:5])
        raise MstarError(f"{folder}: no RNA file for {len(missing)} case(s): {shown}; check the manifest's "
                         "RNA column or pass --skip-missing to drop those cases")
    series = {case: read_gene_values(_case_file(folder, f)) for case, f in files.items()}
    frame = pd.DataFrame(series).T.astype(np.float32)
    frame.index = frame.index.astype(str)
    frame.index.name, frame.columns.name = "case_id", "gene"
    return frame


def _case_file(folder: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else folder / path


def read_omics(path: str | os.PathLike, modalities: Sequence[str] | None = None,
               case_files: Mapping[str, str] | None = None) -> OmicsTable:
    """Read an omic table into cases x columns.

    Args:
        path: A wide TCGA table, any table :func:`read_rna_table` reads, or a folder of per-case
            ``Gene,Value`` files.
        modalities: Wide tables only: suffixes to keep (default: all of ``rnaseq``, ``cnv``, ``mut`` present).
        case_files: For a folder: case id -> its file (the upstream CSV's ``RNA`` column); default: every
            ``<case>.csv`` in the folder.

    Raises:
        MstarError: Missing path, a requested modality absent, unreadable files.
    """
    path = Path(path)
    if not path.exists():
        raise MstarError(f"RNA/omics table {path} does not exist (--rna)")
    if path.is_dir():
        if modalities:
            log.warning("%s: --modalities applies to wide tables only; ignored", path)
        frame = _read_case_files(path, case_files) if case_files else read_rna_table(path)
        return OmicsTable(frame, path)
    present = wide_modalities(path)
    if not present:
        if modalities:
            raise MstarError(f"{path}: no '*_<modality>' columns, so --modalities {','.join(modalities)} "
                             "cannot be applied; drop --modalities for a plain genes table")
        return OmicsTable(read_rna_table(path), path)
    wanted = list(modalities) if modalities else present
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise MstarError(f"{path}: no '*_{unknown[0]}' columns; this table has {', '.join(present)} "
                         "(use --modalities with those)")
    parts = []
    for m in wanted:
        part = read_rna_table(path, layout="wide", modality=m)
        parts.append(part.set_axis([f"{g}_{m}" for g in part.columns], axis=1))
    frame = pd.concat(parts, axis=1)
    frame.columns.name = "column"
    return OmicsTable(frame, path, tuple(s for s in MCAT_SUFFIX_ORDER if s[1:] in wanted))


@dataclass
class SignatureMatch:
    """Signature groups matched to a table's columns.

    Attributes:
        names: Group names (file order).
        columns: Matched columns of each group, sorted by name (MCAT's order).
        genes: Listed genes of each group that matched at least one column.
        listed: Unique genes the file lists in each group.
    """

    names: list[str]
    columns: list[list[str]]
    genes: list[int]
    listed: list[int]

    def summary(self) -> list[dict]:
        """One row per group: name, genes matched / listed, columns used."""
        return [{"group": n, "genes_matched": g, "genes_listed": k, "columns": len(c)}
                for n, c, g, k in zip(self.names, self.columns, self.genes, self.listed)]


def match_signatures(table: OmicsTable, signatures: str | os.PathLike) -> SignatureMatch:
    """Match the groups of ``signatures.csv`` to ``table``'s columns.

    Raises:
        MstarError: If the file is missing or a group matches no column (the group models need each).
    """
    groups = read_signatures(signatures, list(table.values.columns), suffixes=table.suffixes)
    names, columns, genes, listed = [], [], [], []
    for name, cols in groups.groups.items():
        cols = sorted(set(cols))
        if not cols:
            raise MstarError(f"{signatures}: group {name!r} matches no column of {table.source}; check the "
                             "gene symbols or --modalities (every group needs at least one gene)")
        stems = {c[: -len(s)] if s else c for c in cols for s in table.suffixes if not s or c.endswith(s)}
        names.append(str(name))
        columns.append(cols)
        genes.append(len(stems))
        listed.append(groups.counts[name][1])
    return SignatureMatch(names, columns, genes, listed)


@dataclass
class OmicsLayout:
    """Which columns feed a model and how they are grouped.

    Attributes:
        columns: The model's input columns, concatenated (a gene in two groups appears twice).
        sizes: Width of each group (one entry: the full vector).
        names: Group names.
        mode: ``groups`` or ``full``.
    """

    columns: list[str]
    sizes: list[int]
    names: list[str]
    mode: str
    match: SignatureMatch | None = None


def omics_layout(table: OmicsTable, mode: str, signatures: str | os.PathLike | None = None) -> OmicsLayout:
    """The ``groups`` layout (signature groups; needs ``signatures``) or the ``full`` vector (all columns)."""
    if mode == "full":
        cols = [str(c) for c in table.values.columns]
        return OmicsLayout(cols, [len(cols)], ["all"], "full")
    if mode != "groups":
        raise MstarError(f"omics layout {mode!r} is unknown; use groups or full")
    if signatures is None:
        raise MstarError("the signature-group models (mcat, motcat, cmta) need --signatures (an MCAT "
                         "signatures.csv: one column of gene symbols per group)")
    match = match_signatures(table, signatures)
    return OmicsLayout([c for g in match.columns for c in g], [len(g) for g in match.columns], match.names,
                       "groups", match)


@dataclass
class OmicsScaler:
    """Per-column mean / standard deviation of the training cases; ``transform`` standardises and fills
    missing values with 0 (the training mean). Constant or unmeasured columns get a scale of 1."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(0, np.float32))

    @classmethod
    def fit(cls, x: np.ndarray) -> OmicsScaler:
        """Fit on ``x`` ``(n_train, F)`` (NaN ignored; population std as scikit-learn's StandardScaler)."""
        x = np.asarray(x, np.float64)
        seen = (~np.isnan(x)).sum(0)  # (F,)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(seen > 0, np.nansum(x, 0) / np.maximum(seen, 1), 0.0)
            var = np.where(seen > 0, np.nansum((x - mean) ** 2, 0) / np.maximum(seen, 1), 0.0)
        std = np.sqrt(var)
        std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(n, F)`` -> standardised float32, NaN -> 0."""
        z = (np.asarray(x, np.float32) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


@dataclass
class OmicsMatrix:
    """The raw model inputs of every case: ``values`` ``(C, F)`` in ``layout.columns`` order (NaN kept)."""

    cases: list[str]
    values: np.ndarray
    layout: OmicsLayout

    @classmethod
    def build(cls, table: OmicsTable, layout: OmicsLayout, cases: Sequence[str]) -> OmicsMatrix:
        """Rows of ``cases`` (all must be in the table) in layout order."""
        index = table.values.index
        missing = [c for c in cases if c not in index]
        if missing:
            raise MstarError(f"{table.source}: no omics for {len(missing)} case(s): "
                             f"{', '.join(missing[:10])}; pass --skip-missing to drop them")
        frame = table.values.loc[list(cases), layout.columns]
        return cls(list(cases), frame.to_numpy(np.float32), layout)

    def rows(self, cases: Sequence[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.cases)}
        return self.values[[index[c] for c in cases]]

    def fit_scaler(self, train_cases: Sequence[str]) -> OmicsScaler:
        """A scaler fitted on ``train_cases`` only."""
        return OmicsScaler.fit(self.rows(train_cases))

    def missing_fraction(self) -> float:
        return float(np.isnan(self.values).mean()) if self.values.size else 0.0
