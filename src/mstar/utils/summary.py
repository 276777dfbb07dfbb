"""The per-slide ``summary.csv`` of batch commands (``tile``, ``extract``): one row per slide, merged across
runs, and error texts that do not repeat the path the row already names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mstar.utils.atomic import atomic_path


def merge_summary(path: str | os.PathLike, rows: list[dict], columns: Sequence[str],
                  keep_old: Sequence[str] = ()) -> Path:
    """Merge ``rows`` into the summary at ``path`` (rows of other slides are kept), atomically.

    ``keep_old``: columns a new row leaves empty (NaN) that keep the earlier row's value for the slide (the
    timing of a slide reused from an earlier run)."""
    path = Path(path)
    new = pd.DataFrame(rows, columns=list(columns))
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False)
        earlier = old.drop_duplicates("slide", keep="last")
        earlier.index = pd.Index(earlier["slide"].astype(str).tolist())
        # only a slide finished then and reused now (ok both times) keeps the earlier timing
        same = (new["status"].astype(str) == "ok") & (
            new["slide"].astype(str).map(earlier["status"]).astype(str) == "ok")
        for col in (c for c in keep_old if c in old.columns and c in new.columns):
            before = pd.to_numeric(new["slide"].astype(str).map(earlier[col]), errors="coerce")
            new[col] = pd.to_numeric(new[col], errors="coerce").fillna(before.where(same))
        old = old[~old["slide"].astype(str).isin(new["slide"].astype(str))]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    with atomic_path(path) as tmp:
        new.sort_values("slide").to_csv(tmp, index=False, float_format="%.6g")
    return path


def without_path(message: str, *paths: str | os.PathLike | None) -> str:
    """``message`` without a leading ``"<path>: "`` of any of ``paths`` (the row's path column names it)."""
    for path in filter(None, paths):
        message = message.removeprefix(f"{path}: ")
    return message
