"""Reading the tables and JSON files users hand to mstar (RNA tables, signatures, fold files, the wide TCGA
tables; reports and prompt JSON) with one-line errors: an empty file, or one that is not a CSV/TSV (or JSON)
at all, names the file, says what is wrong and what it should contain, instead of pandas' ``EmptyDataError: No
columns to parse from file`` or a ``UnicodeDecodeError`` traceback."""

from __future__ import annotations

import gzip
import json
import os
import zipfile
import zlib
from pathlib import Path

import pandas as pd

from mstar.errors import MstarError, first_line


def empty_table_error(path: str | os.PathLike, what: str, expect: str) -> MstarError:
    """The one error for an empty table file: ``<path>: the <what> is empty; it should hold <expect>``."""
    return MstarError(f"{path}: the {what} is empty; it should hold {expect}")


def check_not_empty(path: str | os.PathLike, what: str, expect: str) -> None:
    """Raise :func:`empty_table_error` for a file of 0 bytes (for formats pandas reports less clearly)."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise empty_table_error(path, what, expect)


def read_csv_table(path: str | os.PathLike, what: str, expect: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)`` with the failures a user's file can cause as one :class:`MstarError`.

    Args:
        path: The table (CSV/TSV/TXT, optionally gzipped; ``sep`` etc. go in ``kwargs``).
        what: What the file is, for the message (``"RNA table"``, ``"signatures file"``, ...).
        expect: What it should hold (``"columns train,val of case ids"``), for the message.
        **kwargs: Passed to :func:`pandas.read_csv`.

    Raises:
        MstarError: The file is empty (no header line), or cannot be parsed as a table (bad quoting, not
            text, a damaged gzip).
    """
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise empty_table_error(path, what, expect) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, gzip.BadGzipFile, EOFError, zipfile.BadZipFile,
            zlib.error, ValueError, OSError) as exc:  # not text, damaged, unreadable, wrong columns asked
        raise MstarError(f"{path}: cannot read the {what} as a CSV/TSV table ({first_line(exc)}); it should "
                         f"hold {expect}") from exc


def read_json_file(path: str | os.PathLike, what: str, expect: str) -> object:
    """The parsed JSON of a user's file, its failures as one :class:`MstarError` naming the file: empty, not
    UTF-8 text, or not valid JSON (with the line).

    Args:
        path: The JSON file.
        what: What the file is, for the message (``"reports file"``).
        expect: What it should hold, for the message.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise MstarError(f"{path}: the {what} is not UTF-8 text (byte {err.start}); save it as "
                         "UTF-8") from None
    if not text.strip():
        raise empty_table_error(path, what, expect)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MstarError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
