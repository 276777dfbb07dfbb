"""Tile many slides: worker processes, resume, ``--skip-errors``, and ``tiles/summary.csv``."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import zlib
from collections.abc import Iterable
from concurrent.futures import as_completed
from pathlib import Path

import pandas as pd

from mstar.errors import MstarError, first_line
from mstar.slide.plan import MPP_TOLERANCE
from mstar.slide.reader import SLIDE_SUFFIXES, slide_id_of
from mstar.slide.tiles_file import read_tiles
from mstar.slide.tiling import (
    STATUS_ERROR,
    TileParams,
    params_key,
    slide_identity,
    summary_row,
    tile_slide,
    tiles_path,
)
from mstar.utils.atomic import remove_stale_parts
from mstar.utils.pools import process_pool
from mstar.utils.progress import progress_bar
from mstar.utils.summary import merge_summary, without_path

log = logging.getLogger(__name__)
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
        message = without_path(first_line(exc), path, path.resolve())
        if reader_failure(exc):  # the reader failed inside the file (mstar's own errors advise already)
            message = (f"reading the slide failed ({message}); the file may be truncated or damaged: copy it "
                       "again, or check it opens in QuPath")
        elif not isinstance(exc, MstarError):
            message = f"{type(exc).__name__}: {message}"
        row = summary_row({"slide_id": slide_id_of(path), "slide_path": str(path.resolve())}, 0, message)
        row["status"] = STATUS_ERROR
        return row


def reader_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from reading the slide file: an I/O or decoder error of OpenSlide, tifffile or
    Pillow (not a bug, a memory error or one of mstar's own errors)."""
    readers = {"OpenSlideError", "OpenSlideUnsupportedFormatError", "TiffFileError", "UnidentifiedImageError"}
    decoder = type(exc).__module__.split(".")[0] == "imagecodecs"  # Jpeg8Error: Empty input file, ...
    return isinstance(exc, (OSError, zlib.error)) or type(exc).__name__ in readers or decoder


def write_summary(out_dir: Path, rows: list[dict]) -> Path:
    """Merge ``rows`` into ``out_dir/tiles/summary.csv`` (rows of other slides are kept)."""
    return merge_summary(out_dir / "tiles" / "summary.csv", rows, SUMMARY_COLUMNS)


def not_attempted_rows(todo: list[Path], out_dir: Path, rows: list[dict]) -> list[dict]:
    """``pending`` rows for the slides of ``todo`` the run stopped before (a fail-fast error, Ctrl-C) and that
    have no tiles file, so that an earlier run's error for one of them is not shown as current."""
    seen = {str(r["slide"]) for r in rows}
    return [{**summary_row({"slide_id": sid, "slide_path": str(p.resolve()), "status": "pending"}, 0),
             "error": "not attempted: the run stopped before this slide; a re-run tiles it"}
            for p in todo if (sid := slide_id_of(p)) not in seen and not tiles_path(out_dir, sid).exists()]


def reuse_verdict(done: Path, attrs: dict, slide: Path, params: TileParams) -> str:
    """Whether the tiles file ``done`` is the finished result for ``slide`` under ``params``.

    Returns ``reuse`` (same slide file, unchanged, same settings), ``redo`` (the same file changed since), or
    a one-line reason it may not be reused (another slide with the same id, other settings), for the caller
    to report: redoing would replace finished tiles the user may still want, so that takes ``--overwrite``.
    Files written before slides were identified (no size/settings recorded) are compared by path only.
    """
    old = attrs.get("slide_path", "")
    if old and Path(old) != slide.resolve():
        return (f"slide id {slide_id_of(slide)!r} is already tiled in {done.parent} from another file "
                f"({old}); pass --overwrite to replace those tiles, or tile into another --out")
    recorded = attrs.get("tile_params")
    if recorded is not None and attrs.get("mpp_source") == "metadata":  # --slide-mpp did not apply to it
        recorded = re.sub(r"slide_mpp=[^,()]+", "slide_mpp=None", recorded)
        params = dataclasses.replace(params, slide_mpp=None)
    if recorded is not None and recorded != params_key(params):
        return (f"{done} was tiled with other settings ({settings_changed(recorded, params)}); "
                "pass --overwrite to tile it again (`mstar extract` then re-extracts its features), or tile "
                "into another --out")
    if "slide_size" in attrs and slide_identity(slide) != {k: int(attrs[k]) for k in ("slide_size",
                                                                                       "slide_mtime_ns")}:
        return "redo"
    return "reuse"


def tile_many(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
              params: TileParams = TileParams(), workers: int = 1, overwrite: bool = False,
              skip_errors: bool = False, show_progress: bool = True) -> pd.DataFrame:
    """Tile every slide in ``inputs`` into ``out_dir``; return the summary of this run.

    A slide whose tiles file already exists is skipped (its row rebuilt from the file) when the file was
    made from the same, unchanged slide file with the same settings; a changed slide file is tiled again;
    another file with the same slide id, or other settings, is refused with a reason (see
    :func:`reuse_verdict`) unless ``overwrite``. Without ``skip_errors`` the first bad or refused slide
    stops the run with an :class:`~mstar.errors.MstarError`, after the summary of what was done has been
    written (also when interrupted).
    """
    out_dir = Path(out_dir)
    paths = expand_slide_paths(inputs)
    if not paths:
        raise MstarError("no slide files given (pass files or a folder of .svs/.tif/.ndpi/... files)")
    for sub in ("tiles", "thumbnails"):
        remove_stale_parts(out_dir / sub)
    rows: list[dict] = []
    todo: list[Path] = []
    failed: list[dict] = []
    for p in paths:
        done = tiles_path(out_dir, slide_id_of(p))
        if not done.exists() or overwrite:
            todo.append(p)
            continue
        coords, attrs = read_tiles(done)
        verdict = reuse_verdict(done, attrs, p, params)
        if verdict == "reuse":
            rows.append(summary_row(attrs, len(coords)))
        elif verdict == "redo":
            log.warning("%s changed since it was tiled (size or modification time): tiling it again", p)
            todo.append(p)
        else:  # refused: reported, but summary.csv keeps the row of the tiles that are there
            row = summary_row({"slide_id": slide_id_of(p), "slide_path": str(p.resolve())}, 0, verdict)
            row["status"] = STATUS_ERROR
            failed.append(row)
    refused = list(failed)
    if failed and not skip_errors:
        write_summary(out_dir, rows)
        raise MstarError(f"{failed[0]['path']}: {failed[0]['error']}")

    try:
        _tile_todo(todo, out_dir, params, workers, skip_errors, show_progress, rows, failed)
    finally:  # also when interrupted: the summary lists what was done, and what was not reached
        write_summary(out_dir, rows + not_attempted_rows(todo, out_dir, rows))
    if failed and not skip_errors:
        row = failed[0]
        raise MstarError(f"{row['path']}: {row['error']} (use --skip-errors to keep going past bad slides)")
    warn_upsampled(rows, params.target_mpp)
    return pd.DataFrame(rows + refused, columns=SUMMARY_COLUMNS).sort_values("slide").reset_index(drop=True)


def warn_upsampled(rows: list[dict], target_mpp: float) -> None:
    """One warning for the slides scanned coarser than ``target_mpp`` (beyond the snapping tolerance):
    their tiles are upsampled, which adds no detail."""
    coarse = [r for r in rows if r.get("status") == "ok" and float(r.get("mpp") or 0) > target_mpp
              * (1 + MPP_TOLERANCE)]
    if coarse:
        first = coarse[0]
        log.warning("%d slide(s) are scanned coarser than --target-mpp %g (e.g. %s at %.3f µm/px): their "
                    "tiles are upsampled %.1fx, which adds no detail; tile at their µm/px or coarser",
                    len(coarse), target_mpp, first["slide"], float(first["mpp"]),
                    float(first["mpp"]) / target_mpp)


def _tile_todo(todo: list[Path], out_dir: Path, params: TileParams, workers: int, skip_errors: bool,
               show_progress: bool, rows: list[dict], failed: list[dict]) -> None:
    """Tile ``todo``, appending a summary row per slide to ``rows`` (and the failed ones to ``failed``)."""
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
            with process_pool(workers) as pool:  # spawned, and they die with this process
                futures = [pool.submit(_safe_tile, p, out_dir, params) for p in todo]
                for fut in as_completed(futures):
                    record(fut.result())
                    if failed and not skip_errors:
                        for f in futures:
                            f.cancel()
                        break


def settings_changed(recorded: str, params: TileParams) -> str:
    """``tile_px 256 -> 128; ...``: the settings that differ between a tiles file's recorded
    ``tile_params`` (the ``key=value`` pairs of :func:`params_key`) and ``params``."""
    def pairs(text: str) -> dict[str, str]:
        return dict(re.findall(r"(\w+)=([^,()]+)", text))

    old, new = pairs(recorded), pairs(params_key(params))
    changed = [f"{k} {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)]
    return "; ".join(changed) or recorded
