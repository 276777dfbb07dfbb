"""Result files of a run directory: ``metrics.json`` and ``predictions.csv`` (atomic writes), readers,
and the ``"0.912 [0.871, 0.948]"`` formatter.

``metrics.json`` maps split → metric → ``{"value", "ci_low", "ci_high", "n"}`` (DESIGN.md). NaN is
written as JSON ``null`` (strict JSON has no NaN) and read back as NaN. One reserved top-level key,
``"_meta"``, may hold free-form provenance (implementations, notes, bootstrap settings); it is not a
split and :func:`read_metrics_json` leaves it out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.utils.atomic import atomic_path, write_text_atomic

ENTRY_KEYS = ("value", "ci_low", "ci_high", "n")
META_KEY = "_meta"


def point_entry(value: float, n: int) -> dict[str, Any]:
    """A ``metrics.json`` entry without an interval (``ci_low``/``ci_high`` NaN)."""
    return {"value": float(value), "ci_low": float("nan"), "ci_high": float("nan"), "n": int(n)}


def _to_json(x: Any) -> Any:
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_to_json(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def write_metrics_json(
    path: str | os.PathLike,
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json`` atomically.

    Args:
        path: Destination file (usually ``runs/<task>/<name>/metrics.json``).
        metrics: ``{split: {metric: {"value", "ci_low", "ci_high", "n", ...extra keys}}}``.
        meta: Optional provenance stored under ``"_meta"`` (must be JSON-serialisable).

    Returns:
        The written path.
    """
    doc: dict[str, Any] = {}
    for split, entries in metrics.items():
        if split == META_KEY:
            raise MstarError(f"'{META_KEY}' is reserved in metrics.json and cannot name a split")
        doc[split] = {}
        for name, entry in entries.items():
            missing = [k for k in ENTRY_KEYS if k not in entry]
            if missing:
                raise MstarError(f"metrics.json entry {split}/{name} lacks {missing}")
            doc[split][name] = {k: _to_json(v)
                                for k, v in {**{k: entry[k] for k in ENTRY_KEYS}, **entry}.items()}
    if meta is not None:
        doc[META_KEY] = dict(meta)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    write_text_atomic(path, text)
    return Path(path)


def _load(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"metrics file {path} not found; run the evaluation step first")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MstarError(f"metrics file {path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(doc, dict):
        raise MstarError(f"metrics file {path} must hold a JSON object of splits")
    return doc


def read_metrics_json(path: str | os.PathLike) -> dict[str, dict[str, dict[str, Any]]]:
    """Read ``metrics.json`` into ``{split: {metric: entry}}`` with ``null`` as NaN (``_meta`` dropped)."""
    doc = _load(path)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split, entries in doc.items():
        if split == META_KEY:
            continue
        out[split] = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict) or any(k not in entry for k in ENTRY_KEYS):
                raise MstarError(
                    f"metrics file {path}: entry {split}/{name} must have keys {list(ENTRY_KEYS)}"
                )
            out[split][name] = {
                **entry, "value": _nan(entry["value"]), "ci_low": _nan(entry["ci_low"]),
                "ci_high": _nan(entry["ci_high"]), "n": int(entry["n"]),
            }  # extra keys (e.g. ``sd``, ``per_unit`` over CV folds) are kept as written
            if "chance" in entry:
                out[split][name]["chance"] = _nan(entry["chance"])
    return out


def read_metrics_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``"_meta"`` object of ``metrics.json`` (empty when absent)."""
    return dict(_load(path).get(META_KEY, {}))


def write_predictions_csv(
    path: str | os.PathLike, table: pd.DataFrame | Mapping[str, Sequence[Any]]
) -> Path:
    """Write ``predictions.csv`` atomically (one row per slide/case/query; no index column).

    Args:
        path: Destination file.
        table: A DataFrame or a mapping of equally long columns (e.g. ``split``, ``case``, ``label``,
            ``prob_<class>``, ``risk``).

    Returns:
        The written path.
    """
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(dict(table))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def read_predictions_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``predictions.csv`` (only empty cells are missing: a case or slide id such as "NA" stays text);
    a missing file is a user error."""
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"predictions file {path} not found; run the evaluation step first")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def format_ci(entry: Mapping[str, Any], digits: int = 3) -> str:
    """``"0.912 [0.871, 0.948]"``; the bare value when the interval is NaN; ``"nan"`` when undefined."""
    value = _nan(entry.get("value"))
    if not math.isfinite(value):
        return "nan"
    low, high = _nan(entry.get("ci_low")), _nan(entry.get("ci_high"))
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def metrics_table(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]], digits: int = 3) -> pd.DataFrame:
    """One row per (split, metric) with the numbers and the formatted ``value [low, high]`` string."""
    rows = [
        {"split": split, "metric": name, **{k: entry[k] for k in ENTRY_KEYS},
         "formatted": format_ci(entry, digits)}
        for split, entries in metrics.items() for name, entry in entries.items()
    ]
    return pd.DataFrame(rows, columns=["split", "metric", *ENTRY_KEYS, "formatted"])
