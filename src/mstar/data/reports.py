"""Pathology report files: ``{slide_or_case_id: text}`` JSON, or HistGen/upstream's split annotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mstar.errors import MstarError


def read_reports(path: str | os.PathLike) -> dict[str, str]:
    """``{id: text}`` from ``{id: text}`` JSON or upstream's ``{"train": [{"id", "report"}], ...}``."""
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: reports file not found")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MstarError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        try:
            return {str(r["id"]): "" if r["report"] is None else str(r["report"])
                    for v in doc.values() for r in v}
        except (KeyError, TypeError) as err:
            raise MstarError(f"{path}: split lists must hold objects with 'id' and 'report'") from err
    if not isinstance(doc, dict):
        raise MstarError(f'{path}: expected a JSON object {{"<slide_or_case>": "<report text>", ...}}')
    return {str(k): "" if v is None else str(v) for k, v in doc.items()}
