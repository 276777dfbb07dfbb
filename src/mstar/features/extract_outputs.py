"""What ``mstar extract`` writes beside the features and how it decides a slide is done: the features file's
attributes, the rows of ``summary.csv``, and whether an existing features file is the finished result for the
slide's current tiles (same weights, same tiles) or must be extracted again."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from mstar.errors import MstarError
from mstar.features.dataset import SlideTiles
from mstar.features.encoders import Encoder
from mstar.features.io import SCHEMA, features_path
from mstar.utils.summary import merge_summary, without_path

log = logging.getLogger(__name__)

STATUS_OK, STATUS_EMPTY, STATUS_ERROR = "ok", "empty", "error"
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


def summary_row(slide: str, tiles_file: Path, slide_path: str, rank: int, n: int = 0, dim: int | None = None,
         seconds: float = float("nan"), status: str = STATUS_OK, error: str = "") -> dict:
    error = without_path(error, slide_path, str(tiles_file))  # the row's path columns already name it
    return {"slide": slide, "n_tiles": n, "dim": dim, "seconds": seconds,
            "tiles_per_s": n / seconds if n and seconds and seconds > 0 else float("nan"), "rank": rank,
            "status": status, "error": error, "tiles_file": str(tiles_file), "slide_path": slide_path}


def write_summary(out_dir: Path, rows: list[dict]) -> Path:
    """Merge ``rows`` into ``out_dir/summary.csv`` (rows of other slides are kept)."""
    return merge_summary(out_dir / "summary.csv", rows, SUMMARY_COLUMNS)


def check_existing(h5: Path, encoder: Encoder, tiles: SlideTiles) -> int | None:
    """Tiles in a finished features file, or None when it must be redone: it was made from other tiles (the
    slide was tiled again since) or it cannot be read (truncated outside mstar's atomic writes); an error
    when it came from other weights."""
    try:
        with h5py.File(h5, "r") as f:
            sha = f.attrs.get("encoder_sha", "")
            n = int(f["features"].shape[0])
            coords = f["coords"][:] if "coords" in f else None
            tile_px = f.attrs.get("tile_px_level0")
    except (OSError, KeyError) as exc:  # truncated or foreign: not a finished result of ours
        log.warning("%s: unreadable features file (%s); extracting it again", h5, str(exc).splitlines()[0])
        return None
    sha = sha.decode() if isinstance(sha, bytes) else str(sha)
    if sha and sha != encoder.encoder_sha:
        raise MstarError(f"{h5}: extracted with other weights (encoder_sha {sha[:12]}..., now "
                         f"{encoder.encoder_sha[:12]}...); pass --overwrite or another --encoder name")
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
    reason = "features were not written" + (f" ({str(error).splitlines()[0][:200]})" if error else "")
    for row in rows:
        if row["status"] != STATUS_ERROR and not features_path(root, folder, row["slide"]).exists():
            row.update(status=STATUS_ERROR, error=reason)
