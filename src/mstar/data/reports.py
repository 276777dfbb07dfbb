"""Pathology report files: ``{slide_or_case_id: text}`` JSON, HistGen/upstream's split annotation, or a CSV.

- JSON ``{"<slide or case id>": "<text>"}``, or upstream's ``{"train": [{"id", "report"}], ...}``;
- CSV/TSV (optionally ``.gz``) with an id column (``case_id``, ``case``, ``patient``, ``slide_id``, ``slide``
  or ``id``) and a text column (``text``, ``report`` or ``report_text``), one or more rows per id, e.g. the
  TCGA reports table (``case_id, project, source, report_key, n_chars, text``).

:func:`load_reports` also prepares the text (:mod:`mstar.data.report_prep`: OCR clean-up, one text per
patient, diagnosis-first truncation); ``prep="auto"`` prepares CSV tables (raw OCR) and leaves JSON as it is.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

from mstar.data.report_prep import PrepCounts, prepare_reports
from mstar.data.tables import read_csv_table, read_json_file
from mstar.errors import MstarError

ID_COLUMNS = ("case_id", "case", "patient", "patient_id", "slide_id", "slide", "id")
TEXT_COLUMNS = ("text", "report", "report_text")
PREP_MODES = ("auto", "ocr", "none")


def _is_table(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith((".csv", ".tsv", ".txt"))


def _read_json(path: Path) -> dict[str, str]:
    doc = read_json_file(path, "reports file", '{"<slide_or_case>": "<report text>", ...}')
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        try:
            pairs = [(str(r["id"]), r["report"]) for v in doc.values() for r in v]
        except (KeyError, TypeError) as err:
            raise MstarError(f"{path}: split lists must hold objects with 'id' and 'report'") from err
    elif isinstance(doc, dict):
        pairs = [(str(k), v) for k, v in doc.items()]
    else:
        raise MstarError(f'{path}: expected a JSON object {{"<slide_or_case>": "<report text>", ...}}')
    bad = next(((k, v) for k, v in pairs if v is not None and not isinstance(v, str)), None)
    if bad is not None and isinstance(bad[1], list) and bad[0] in ("train", "val", "test"):
        raise MstarError(f"{path}: '{bad[0]}' holds a list, not a report; a HistGen annotation file needs "
                         'every top-level value to be a split list ({"train": [{"id", "report"}], ...})')
    if bad is not None:  # str() of a nested object would be trained on as if it were text
        raise MstarError(f"{path}: the report of '{bad[0]}' is a {type(bad[1]).__name__}, not text; each "
                         'value must be the report as a string ({"<slide_or_case>": "<report text>", ...})')
    return {k: v or "" for k, v in pairs}


def read_report_rows(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, raw text)`` rows of a reports CSV/TSV (several rows may share an id).

    Raises:
        MstarError: No id or text column (the columns found are listed), or only empty texts.
    """

    path = Path(path)
    sep = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    table = read_csv_table(path, "reports table", f"columns {ID_COLUMNS[0]} and {TEXT_COLUMNS[0]}, one row "
                           "per report", sep=sep, dtype=str, keep_default_na=False)
    cols = {c.lower().strip(): c for c in table.columns}
    id_col = next((cols[c] for c in ID_COLUMNS if c in cols), None)
    text_col = next((cols[c] for c in TEXT_COLUMNS if c in cols), None)
    if id_col is None:
        raise MstarError(f"{path}: no case-id column (looked for {', '.join(ID_COLUMNS)}); found "
                         f"{list(table.columns)[:8]}")
    if text_col is None:
        raise MstarError(f"{path}: no text column (looked for {', '.join(TEXT_COLUMNS)}); found "
                         f"{list(table.columns)[:8]}")
    if not table[text_col].str.strip().astype(bool).any():
        raise MstarError(f"{path}: column '{text_col}' holds only empty strings; no report to read")
    return list(zip(table[id_col].str.strip(), table[text_col]))


def load_reports(path: str | os.PathLike, prep: str = "auto",
                 max_tokens: int | None = None) -> tuple[dict[str, str], PrepCounts | None]:
    """``({id: text}, what preparation did or None)`` from a reports JSON or table.

    Args:
        path: The reports file.
        prep: ``auto`` (tables are prepared, JSON is not), ``ocr`` (always) or ``none``.
        max_tokens: Token budget of the prepared text (diagnosis sections first).
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: reports file not found")
    if prep not in PREP_MODES:
        raise MstarError(f"config: 'report_prep' must be one of {', '.join(PREP_MODES)}; got {prep!r}")
    stat = path.stat()
    texts, counts = _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, prep, max_tokens)
    return dict(texts), (copy.deepcopy(counts) if counts is not None else None)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int, prep: str,
                 max_tokens: int | None) -> tuple[dict[str, str], PrepCounts | None]:
    """:func:`load_reports` memoised per file version: preparing 8,000 OCR reports takes ~15 s, and one
    benchmark reads the same table in every command (callers get copies)."""
    source = Path(path)
    rows = read_report_rows(source) if _is_table(source) else list(_read_json(source).items())
    if prep == "none" or (prep == "auto" and not _is_table(source)):
        out: dict[str, str] = {}
        for key, text in rows:  # several rows of one id (a table): joined by a blank line
            out[key] = f"{out[key]}\n\n{text}" if out.get(key) else text
        return out, None
    return prepare_reports(rows, max_tokens=max_tokens)


def read_reports(path: str | os.PathLike) -> dict[str, str]:
    """``{id: text}`` as written (no preparation) from a reports JSON or table."""
    return load_reports(path, prep="none")[0]


def report_key(slide: str, case: str, reports: dict[str, str]) -> str | None:
    """The id a slide's report is found under: its slide id, else its case id (one report per case, as
    TCGA's, serves every slide of the case); None when the file has neither."""
    return slide if slide in reports else case if case in reports else None
