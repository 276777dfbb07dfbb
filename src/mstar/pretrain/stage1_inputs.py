"""Stage-1 inputs: one row per slide with its case, cancer type, split, report and RNA row.

- **Manifest**: any classification manifest (``case,slide,label,fold``, e.g. the synthetic
  ``manifests/diagnosis.csv``), a survival manifest whose ``Study`` column names the cancer type, or a bare
  ``case_id,slide_id,label`` list (upstream's feature-extraction CSVs) for which ``val_fraction`` of the cases
  (stratified by cancer type, seeded) are held out. Only ``train`` rows are trained on, so downstream
  validation and test cases stay unseen; held-out retrieval is scored on ``val`` (and ``test``, config
  ``heldout``). With CV fold columns the first fold decides (its ``test`` rows are held out).
- **Reports**: JSON ``{slide_or_case: text}`` or upstream's ``{"train": [{"id", "report"}], ...}``. A slide's
  report is looked up by slide id, then by case id. Empty or whitespace-only reports count as missing.
- **RNA**: :func:`mstar.data.rna.read_rna_table`, looked up by case id (then slide id). The gene vocabulary
  is the set of genes measured in at least one training case.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mstar.data.manifest import cohort_labels, read_manifest
from mstar.data.reports import (
    read_reports,  # noqa: F401  (re-exported for stage-1 callers)
    report_key,
)
from mstar.errors import MstarError

log = logging.getLogger(__name__)


def _stratified_holdout(cases: pd.Series, labels: pd.Series, fraction: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=cases.index, dtype=object)
    for _, idx in labels.groupby(labels).groups.items():
        idx = np.array(idx)
        rng.shuffle(idx)
        n_val = int(round(fraction * len(idx))) if len(idx) >= 3 else 0
        split[idx[:n_val]] = "val"
    return split


def read_slide_table(path: str | os.PathLike, label_column: str = "auto", val_fraction: float = 0.15,
                     seed: int = 0, require_label: bool = True) -> pd.DataFrame:
    """One row per slide: ``slide``, ``case``, ``label`` (cancer type) and ``split`` (train/val/test).

    The manifest is read by :func:`mstar.data.manifest.read_manifest` and its first split taken
    (:meth:`~mstar.data.manifest.Manifest.first_split`); cross-validation folds have no ``val``, so the
    first fold's ``test`` cases become the held-out ``val``.

    Args:
        path: Manifest CSV.
        label_column: Cancer-type column (``auto``: ``label``, else ``study``).
        val_fraction: Held-out fraction of cases when the manifest has no split column.
        seed: Seed of that hold-out.
        require_label: Without a cancer-type column, fail (pretraining) or use ``""`` (embedding, which also
            ignores splits).

    Raises:
        MstarError: Missing file or columns, no cancer-type column, a slide listed twice.
    """
    manifest = read_manifest(path, require_split=False, require_label=False)
    table = manifest.table.copy()
    table["label"] = cohort_labels(manifest, label_column, required=require_label, what="cancer-type")
    split = manifest.first_split() if require_label else None
    if split is None:
        table["split"] = _stratified_holdout(table["case"], table["label"], val_fraction, seed)
    else:
        table["split"] = split.replace({"test": "val"}) if manifest.folds else split
    rows = table[["case", "slides", "label", "split"]].explode("slides").rename(columns={"slides": "slide"})
    rows = rows.dropna(subset=["slide"]).reset_index(drop=True)
    dup = rows["slide"][rows["slide"].duplicated()]
    if len(dup):
        raise MstarError(f"{path}: slide ids listed twice ({list(dup[:5])}); each slide belongs to one case")
    return rows[["slide", "case", "label", "split"]]


@dataclass
class ReportMatch:
    """Per-slide report texts (None = missing) and the counts behind them."""

    texts: list[str | None]
    keys: list[str | None]   # the id each text was found under (slide or case)
    n_found: int
    n_empty: int
    n_absent: int


def match_reports(slides: list[str], cases: list[str], reports: dict[str, str]) -> ReportMatch:
    """Look each item's report up by slide id, then case id; empty/whitespace reports count as missing."""
    texts, keys, n_empty, n_absent = [], [], 0, 0
    for slide, case in zip(slides, cases):
        key = report_key(slide, case, reports)
        text = reports.get(key) if key is not None else None
        if key is None:
            n_absent += 1
        elif not text or not text.strip():
            n_empty += 1
            key = text = None
        texts.append(text)
        keys.append(key)
    found = len(slides) - n_empty - n_absent
    if n_empty or n_absent:
        log.warning("reports: %d of %d items have one, %d empty (counted as missing), %d absent",
                    found, len(slides), n_empty, n_absent)
    return ReportMatch(texts, keys, found, n_empty, n_absent)


def gene_rows(slides: list[str], cases: list[str], table_cases: list[str]) -> np.ndarray:
    """Row of each slide's RNA profile in ``table_cases`` (by case id, then slide id); -1 when absent."""
    index = {c: i for i, c in enumerate(table_cases)}
    return np.array([index.get(c, index.get(s, -1)) for s, c in zip(slides, cases)], dtype=np.int64)


def training_vocabulary(table: pd.DataFrame, train_cases: list[str]) -> list[str]:
    """Genes measured (not NaN) in at least one training case, in table order."""
    rows = table.loc[table.index.intersection(pd.Index(train_cases))]
    if rows.empty:
        raise MstarError("RNA table: no training case has a profile; check that its case ids match the "
                         f"manifest (table starts {list(table.index[:3])}, manifest {train_cases[:3]})")
    return [str(g) for g in rows.columns[rows.notna().any(axis=0).to_numpy()]]
