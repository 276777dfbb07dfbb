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
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.data.manifest import SPLIT_ALIASES, read_manifest, slide_ids
from mstar.data.reports import read_reports  # noqa: F401  (re-exported for stage-1 callers)
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

    Args:
        path: Manifest CSV.
        label_column: Cancer-type column (``auto``: ``label``, else ``study``).
        val_fraction: Held-out fraction of cases when the manifest has no split column.
        seed: Seed of that hold-out.
        require_label: Without a cancer-type column, fail (pretraining) or use ``""`` (embedding).

    Raises:
        MstarError: Missing file or columns, no cancer-type column, a slide listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: manifest not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is reported the same way
        raise MstarError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]})") from exc
    cols = {c.lower().strip(): c for c in raw.columns}
    folds = any(c.startswith("fold") and c[4:].isdigit() for c in cols)
    split_col = cols.get("fold", cols.get("split"))
    known = ({"event", "status", "wsi", "id"} <= set(cols)
             or ({"slide", "label"} <= set(cols) or {"slide_id", "label"} <= set(cols)))
    has_split = require_label and (split_col is not None or folds)  # embedding ignores splits
    if has_split and known:  # an upstream schema: let the manifest reader validate it
        manifest = read_manifest(path)
        table = manifest.table.copy()
        if manifest.folds:
            table["split"] = table[manifest.folds[0]].replace({"test": "val"})
    else:
        slide_col = next((cols[c] for c in ("slide", "slide_id", "wsi") if c in cols), None)
        if slide_col is None:
            raise MstarError(f"{path}: needs a 'slide' (or 'slide_id', 'WSI') column; found {list(raw.columns)}")
        case_col = next((cols[c] for c in ("case", "case_id", "id") if c in cols), slide_col)
        table = pd.DataFrame({"case": raw[case_col], "slides": raw[slide_col].map(slide_ids)})
        for low, orig in cols.items():
            if low not in table.columns:
                table[low] = raw[orig]
        if has_split:
            if split_col is None:
                raise MstarError(f"{path}: CV fold columns need the label column too; add 'label'")
            split = raw[split_col].str.strip().str.lower().map(SPLIT_ALIASES)
            if split.isna().any():
                bad = sorted(set(raw[split_col][split.isna()]))[:5]
                raise MstarError(f"{path}: column '{split_col}' holds {bad}; use train, val or test")
            table["split"] = split
    want = ("label", "study") if label_column == "auto" else (label_column.lower(),)
    found = next((c for c in want if c in table.columns), None)
    if found is None and require_label:
        raise MstarError(f"{path}: no cancer-type column (looked for {', '.join(want)}); set label_column")
    table["label"] = table[found].astype(str).str.strip() if found else ""
    if found and require_label and (table["label"] == "").any():
        raise MstarError(f"{path}: empty cancer type in column '{found}'")
    if not has_split:
        table["split"] = _stratified_holdout(table["case"], table["label"], val_fraction, seed)
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
    """Look each slide's report up by slide id, then case id; empty/whitespace reports count as missing."""
    texts, keys, n_empty, n_absent = [], [], 0, 0
    for slide, case in zip(slides, cases):
        key = slide if slide in reports else case if case in reports else None
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
        log.warning("reports: %d of %d slides have one, %d empty (counted as missing), %d absent",
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
