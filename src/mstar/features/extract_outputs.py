"""What ``mstar extract`` writes beside the features and how it decides a slide is done: the features file's
attributes, the rows of ``summary.csv``, and whether an existing features file is the finished result for the
slide's current tiles (same weights, same tiles) or must be extracted again."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from mstar.errors import MstarError, first_line
from mstar.features.dataset import SlideTiles
from mstar.features.encoders import Encoder
from mstar.features.io import SCHEMA, features_path
from mstar.slide.tiles_file import read_tiles
from mstar.utils.summary import merge_summary, without_path

log = logging.getLogger(__name__)

STATUS_OK, STATUS_EMPTY, STATUS_ERROR, STATUS_PENDING = "ok", "empty", "error", "pending"
NOT_ATTEMPTED = "not attempted: the run stopped before this slide; a re-run extracts it"
SUMMARY_COLUMNS = ["slide", "n_tiles", "dim", "seconds", "tiles_per_s", "rank", "status", "error",
                   "tiles_file", "slide_path"]


def feature_attrs(t: SlideTiles, encoder: Encoder, precision: str, tiles_file: Path) -> dict:
    """The features file attributes: the tiles attrs plus the encoder, its hash and its input contract."""
    attrs = {k: v for k, v in t.attrs.items() if k != "schema"}
    attrs["tiles_schema"] = t.attrs.get("schema", "")
    attrs["slide_path"] = t.slide_path
    attrs["tiles_file"] = str(tiles_file.resolve())
    p = encoder.preprocess
    attrs.update({
        "schema": SCHEMA, "encoder": encoder.name, "encoder_sha": encoder.encoder_sha,
        "dim": int(encoder.dim),
        "checkpoint": os.path.basename(encoder.checkpoint) if encoder.checkpoint else "",
        "precision": str(precision), "precision_choice": getattr(precision, "note", "requested"),
        "encoder_input_px": p.input_px, "encoder_mean": list(p.mean),
        "encoder_std": list(p.std), "encoder_target_mpp": p.target_mpp,
        "interpolation": p.as_attrs()["interpolation"],
    })
    return attrs


def summary_row(slide: str, tiles_file: Path, slide_path: str, rank: int | None, n: int = 0,
                dim: int | None = None, seconds: float = float("nan"), status: str = STATUS_OK,
                error: str = "") -> dict:
    """One ``summary.csv`` row (``rank`` None: no rank worked on the slide)."""
    error = without_path(error, slide_path, str(tiles_file))  # the row's path columns already name it
    return {"slide": slide, "n_tiles": n, "dim": dim, "seconds": seconds,
            "tiles_per_s": n / seconds if n and seconds and seconds > 0 else float("nan"), "rank": rank,
            "status": status, "error": error, "tiles_file": str(tiles_file), "slide_path": slide_path}


def write_summary(out_dir: Path, rows: list[dict], tiles_files: Sequence[Path] = ()) -> Path:
    """Merge ``rows`` into ``out_dir/summary.csv`` (rows of other slides are kept).

    ``tiles_files`` are the slides this run was asked for: one that got no row (the run stopped first: a
    fail-fast error, Ctrl-C) and has no features file gets a ``pending`` row, so that an earlier run's
    error for it is not shown as current; one with a features file keeps its earlier row.
    """
    return merge_summary(out_dir / "summary.csv", rows + not_attempted_rows(out_dir, rows, tiles_files),
                         SUMMARY_COLUMNS, keep_old=("seconds", "tiles_per_s"))  # a reused slide's timing


def not_attempted_rows(out_dir: Path, rows: list[dict], tiles_files: Sequence[Path]) -> list[dict]:
    """``pending`` rows for the ``tiles_files`` without a row in ``rows`` and without a features file in
    ``out_dir`` (slide id: the tiles file's name, as for an unreadable tiles file)."""
    seen = {str(r["tiles_file"]) for r in rows}
    pending = []
    for tf in (tf for tf in tiles_files if str(tf) not in seen):
        try:
            slide = str(read_tiles(tf)[1]["slide_id"])
        except MstarError:  # unreadable: named after the file, as the error row a run gives it
            slide = tf.stem.removesuffix("_patches")
        if not (out_dir / f"{slide}.h5").exists():
            pending.append(summary_row(slide, tf, "", None, status=STATUS_PENDING, error=NOT_ATTEMPTED))
    return pending


def check_existing(h5: Path, encoder: Encoder, tiles: SlideTiles, precision: str | None = None) -> int | None:
    """Tiles in a finished features file, or None when it must be redone: it was made from other tiles (the
    slide was tiled again since) or it cannot be read (truncated outside mstar's atomic writes); an error
    when it came from other weights, or in another precision than one asked for explicitly (``precision``
    with ``note == "requested"``, as :func:`~mstar.features.precision.resolve_precision` returns it; a
    precision chosen by ``auto`` takes the file as it is)."""
    try:
        with h5py.File(h5, "r") as f:
            made_in = f.attrs.get("precision", "")
            sha = f.attrs.get("encoder_sha", "")
            n = int(f["features"].shape[0])
            coords = f["coords"][:] if "coords" in f else None
            tile_px = f.attrs.get("tile_px_level0")
    except (OSError, KeyError) as exc:  # truncated or foreign: not a finished result of ours
        log.warning("%s: unreadable features file (%s); extracting it again", h5, first_line(exc))
        return None
    sha = sha.decode() if isinstance(sha, bytes) else str(sha)
    if sha and sha != encoder.encoder_sha:
        raise MstarError(f"{h5}: extracted with other weights (encoder_sha {sha[:12]}..., now "
                         f"{encoder.encoder_sha[:12]}...); pass --overwrite or another --encoder name")
    made_in = made_in.decode() if isinstance(made_in, bytes) else str(made_in)
    if made_in and precision and getattr(precision, "note", "") == "requested" and made_in != str(precision):
        raise MstarError(f"{h5}: extracted in {made_in}, not the --precision {precision} asked for; pass "
                         f"--overwrite to extract again in {precision}, or --precision {made_in} (or auto) "
                         "to keep these features")
    same_tiles = coords is not None and np.array_equal(coords.reshape(-1, 2), tiles.coords.reshape(-1, 2))
    if tile_px is not None and tiles.attrs.get("tile_px_level0") is not None:
        same_tiles = same_tiles and int(tile_px) == int(tiles.attrs["tile_px_level0"])
    if not same_tiles:
        log.warning("%s: made from other tiles than the slide's tiles file has now (tiled again since); "
                    "extracting it again", h5)
    return n if same_tiles else None


def unwritten_as_errors(rows: list[dict], root: Path, folder: str, error: BaseException | None) -> None:
    """Rows are recorded when a slide's features are handed to the background writer; a slide whose file is
    not on disk once the writer has finished (a failed write: disk full, no permission) becomes an
    ``error`` row, never an ``ok`` one."""
    reason = "features were not written" + (f" ({first_line(error)})" if error is not None else "")
    for row in rows:
        if row["status"] != STATUS_ERROR and not features_path(root, folder, row["slide"]).exists():
            row.update(status=STATUS_ERROR, error=reason)

