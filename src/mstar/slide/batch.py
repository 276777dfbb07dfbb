"""Tile many slides: worker processes, resume, ``--skip-errors``, and ``tiles/summary.csv``."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from mstar.errors import MstarError
from mstar.slide.reader import SLIDE_SUFFIXES, slide_id_of
from mstar.slide.tiles_file import read_tiles
from mstar.slide.tiling import STATUS_ERROR, TileParams, summary_row, tile_slide, tiles_path
from mstar.utils.atomic import atomic_path, remove_stale_parts
from mstar.utils.progress import progress_bar

SUMMARY_COLUMNS = ["slide", "path", "mpp", "level", "read_px", "tile_um", "n_tiles", "tissue_fraction",
                   "seconds", "status", "error"]


def expand_slide_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and the slide files (by suffix) inside any folder given; duplicates removed."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in SLIDE_SUFFIXES and q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise MstarError(f"{p}: no such slide file or folder")
    seen: dict[str, Path] = {}
    for p in out:
        sid = slide_id_of(p)
        if sid in seen and seen[sid].resolve() != p.resolve():
            raise MstarError(f"two slides share the id {sid!r} ({seen[sid]} and {p}); output files are named "
                             "by slide id, so rename one of them")
        seen[sid] = p
    return list(seen.values())


def _safe_tile(path: Path, out_dir: Path, params: TileParams) -> dict:
    try:
        return tile_slide(path, out_dir, params)
    except Exception as exc:  # noqa: BLE001 - reported per slide, re-raised by the caller unless skipping
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        row = summary_row({"slide_id": slide_id_of(path), "slide_path": str(path.resolve())}, 0, message)
        row["status"] = STATUS_ERROR
        return row


def write_summary(out_dir: Path, rows: list[dict]) -> Path:
    """Merge ``rows`` into ``out_dir/tiles/summary.csv`` (rows of other slides are kept)."""
    path = out_dir / "tiles" / "summary.csv"
    new = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False)
        old = old[~old["slide"].astype(str).isin(new["slide"].astype(str))]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    with atomic_path(path) as tmp:
        new.sort_values("slide").to_csv(tmp, index=False, float_format="%.6g")
    return path


def tile_many(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
              params: TileParams = TileParams(), workers: int = 1, overwrite: bool = False,
              skip_errors: bool = False, show_progress: bool = True) -> pd.DataFrame:
    """Tile every slide in ``inputs`` into ``out_dir``; return the summary of this run.

    Slides whose tiles file already exists are skipped (their row is rebuilt from the file) unless
    ``overwrite``. Without ``skip_errors`` the first bad slide stops the run with an
    :class:`~mstar.errors.MstarError`, after the summary of what was done has been written.
    """
    out_dir = Path(out_dir)
    paths = expand_slide_paths(inputs)
    if not paths:
        raise MstarError("no slide files given (pass files or a folder of .svs/.tif/.ndpi/... files)")
    for sub in ("tiles", "thumbnails"):
        remove_stale_parts(out_dir / sub)
    rows: list[dict] = []
    todo: list[Path] = []
    for p in paths:
        done = tiles_path(out_dir, slide_id_of(p))
        if done.exists() and not overwrite:
            coords, attrs = read_tiles(done)
            rows.append(summary_row(attrs, len(coords)))
        else:
            todo.append(p)

    failed: list[dict] = []
    with progress_bar(transient=False) as bar:
        task = bar.add_task("tiling", total=len(todo), rate="", visible=show_progress and bool(todo))
        n_tiles = 0

        def record(row: dict) -> None:
            nonlocal n_tiles
            rows.append(row)
            n_tiles += int(row["n_tiles"])
            bar.update(task, advance=1, rate=f"{n_tiles} tiles")
            if row["status"] == STATUS_ERROR:
                failed.append(row)

        if workers <= 1 or len(todo) <= 1:
            for p in todo:
                record(_safe_tile(p, out_dir, params))
                if failed and not skip_errors:
                    break
        else:
            ctx = mp.get_context("spawn")  # fresh interpreters: no inherited slide handles or threads
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_safe_tile, p, out_dir, params) for p in todo]
                for fut in as_completed(futures):
                    record(fut.result())
                    if failed and not skip_errors:
                        for f in futures:
                            f.cancel()
                        break
    write_summary(out_dir, rows)
    if failed and not skip_errors:
        row = failed[0]
        raise MstarError(f"{row['path']}: {row['error']} (use --skip-errors to keep going past bad slides)")
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values("slide").reset_index(drop=True)
