"""Multi-resolution features: each high-power tile with the low-power tile around it.

A context features file is a high-power features file (``features`` (N, D) and ``coords`` as always, so
CLAM/TRIDENT readers read the high-power part unchanged) with three more datasets:

    context_features (N, D)   the low-power feature of the region holding each tile's centre (zeros where
                              no low-power tissue tile covers it; ``context_index`` is then -1)
    context_index    (N,)     row of that region in ``context_coords``
    context_coords   (M, 2)   the low-power tiles (level-0 top-left; side ``context_tile_px_level0``)

and attributes ``context_mpp``, ``context_tile_px_level0``, ``context_encoder``. `mstar train ...
--set context=true` (a bag store with ``context=True``) hands models ``[high | context]`` (N, 2D): every
aggregator takes both by concatenation, and learns how to weigh them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from mstar.errors import MstarError
from mstar.utils.atomic import finished_files

CONTEXT = "context_features"
log = logging.getLogger(__name__)


def context_rows(hp_coords: np.ndarray, hp_side: int, lp_coords: np.ndarray, lp_side: int) -> np.ndarray:
    """For each high-power tile, the row of the low-power tile containing its centre, or -1 (low-power tiles
    lie on the level-0 grid of step ``lp_side``)."""
    centres = np.asarray(hp_coords, np.float64).reshape(-1, 2) + hp_side / 2  # (N, 2)
    index = {(int(x), int(y)): i for i, (x, y) in enumerate(np.asarray(lp_coords, np.int64).reshape(-1, 2))}
    cells = np.floor(centres / lp_side).astype(np.int64) * lp_side
    return np.array([index.get((int(x), int(y)), -1) for x, y in cells], dtype=np.int64)


def write_context_folder(high: str | os.PathLike, low: str | os.PathLike,
                         out: str | os.PathLike) -> list[Path]:
    """For every features file in ``high`` with a same-named file in ``low`` (the same slides at a coarser
    mpp, same encoder), write ``out/<slide>.h5`` with the context datasets. Returns the files written."""
    from mstar.features.io import load_features
    from mstar.features.writer import write_features_file

    high, low, out = Path(high), Path(low), Path(out)
    written = []
    for path in finished_files(high, (".h5",)):
        other = low / path.name
        if not other.is_file():
            continue
        feats, coords, attrs = load_features(path)
        lp_feats, lp_coords, lp_attrs = load_features(other)
        if lp_attrs.get("encoder_sha") != attrs.get("encoder_sha"):
            raise MstarError(f"{other}: made by another encoder than {path}; embed both passes with one "
                             "encoder")
        if float(lp_attrs.get("target_mpp", 0)) <= float(attrs.get("target_mpp", 0)):
            raise MstarError(f"{other}: the context pass must be coarser than {path} (µm/px)")
        rows = context_rows(coords, int(attrs["tile_px_level0"]), lp_coords, int(lp_attrs["tile_px_level0"]))
        context = np.zeros_like(feats, dtype=np.float32)
        context[rows >= 0] = lp_feats[rows[rows >= 0]]
        meta = {k: v for k, v in attrs.items() if k != "coords_known"}
        meta.update({"context_mpp": float(lp_attrs["target_mpp"]),
                     "context_tile_px_level0": int(lp_attrs["tile_px_level0"]),
                     "context_encoder": str(lp_attrs.get("encoder", ""))})
        write_features_file(out / path.name, feats, coords, meta,
                            {CONTEXT: context, "context_index": rows,
                             "context_coords": np.asarray(lp_coords, np.int64).reshape(-1, 2)})
        written.append(out / path.name)
    if not written:
        raise MstarError(f"{high} and {low}: no slide has features at both resolutions")
    return written


def load_context(path: str | os.PathLike) -> np.ndarray:
    """``context_features`` (N, D) of a context features file."""
    with h5py.File(path, "r") as f:
        if CONTEXT not in f:
            raise MstarError(f"{path}: no {CONTEXT}; build a context folder with "
                             "`mstar extract --context-mpp`")
        return np.asarray(f[CONTEXT][:], np.float32)


def low_power_tiles(hp_tiles: Path, out: Path, mpp: float) -> Path:
    """The low-power tiles of a slide, derived from its high-power tiles file: every ``mpp`` region on the
    level-0 grid that holds the centre of a high-power tile (no second tissue segmentation, and every
    high-power tile gets a region). ``tissue_fraction`` is the share of the region's high-power tiles that
    are present. Written to ``out/<slide>.h5`` unless an up-to-date one is there."""
    from mstar.slide.plan import plan_read
    from mstar.slide.reader import open_slide
    from mstar.slide.tiles_file import read_tiles, tiles_attrs, write_tiles

    dst = out / hp_tiles.name
    if dst.is_file() and dst.stat().st_mtime_ns >= hp_tiles.stat().st_mtime_ns:
        existing = read_tiles(dst)[1]
        if float(existing.get("target_mpp", 0)) == float(mpp):
            return dst
    coords, attrs = read_tiles(hp_tiles)
    override = float(attrs["mpp_level0"]) if attrs.get("mpp_source") == "override" else None
    with open_slide(attrs["slide_path"], mpp=override) as slide:
        plan = plan_read(slide.mpp, slide.level_downsamples, mpp, int(attrs.get("tile_px", 256)), 0)
        dims = slide.level_dimensions
    side = int(plan.tile_px_level0)
    hp_side = int(attrs["tile_px_level0"])
    cells = np.floor((np.asarray(coords, np.float64).reshape(-1, 2) + hp_side / 2) / side).astype(np.int64)
    lp, counts = np.unique(cells * side, axis=0, return_counts=True)  # (M, 2) level-0 top-left
    per_region = max(1, round(side / max(1, int(attrs.get("step_px_level0", hp_side)))) ** 2)
    extra = {k: attrs[k] for k in ("mpp_source", "slide_size", "slide_mtime_ns", "min_tissue") if k in attrs}
    extra.update({"status": "ok" if len(lp) else "no tissue", "derived_from": str(hp_tiles.resolve()),
                  "tile_params": f"derived from {hp_tiles.name} at {mpp:g} um/px"})
    write_tiles(dst, lp.reshape(-1, 2), np.minimum(1.0, counts / per_region),
                tiles_attrs(plan, str(attrs["slide_id"]), str(attrs["slide_path"]), dims, extra))
    return dst


def low_power_pass(root: str | os.PathLike, encoder, mpp: float = 2.0, checkpoint: str | None = None,
                   batch_size: int = 64, skip_errors: bool = False, show_progress: bool = True,
                   precision: str | None = None) -> Path:
    """The slides of ``root/tiles`` at ``mpp`` (:func:`low_power_tiles` into ``root/scan/tiles``), embedded
    with ``encoder`` (what the hierarchical scan and the context files share; slides done before are
    reused). Returns the low-power features folder."""
    from mstar.features.encoders import Encoder, create_encoder
    from mstar.features.extract import extract_features
    from mstar.slide.tiles_file import read_tiles

    root = Path(root)
    files = finished_files(root / "tiles", (".h5",))
    if not files:
        raise MstarError(f"{root}/tiles: no tiles files; run `mstar tile SLIDES --out {root}` first")
    first = read_tiles(files[0])[1]
    if mpp <= float(first.get("target_mpp", 0.5)):
        raise MstarError(f"low-power pass at {mpp} µm/px: it must be coarser than the tiles "
                         f"({first.get('target_mpp')} µm/px)")
    for path in files:
        try:
            low_power_tiles(path, root / "scan" / "tiles", mpp)
        except MstarError:
            if not skip_errors:
                raise
            log.warning("%s: no low-power tiles (skipped)", path.name)
    enc = encoder if isinstance(encoder, Encoder) else create_encoder(encoder, checkpoint)
    quiet = _Without("re-tile with --target-mpp")  # a coarser pass than the encoder's mpp is the point here
    extract_log = logging.getLogger("mstar.features.extract")
    extract_log.addFilter(quiet)
    try:
        extract_features(root / "scan", enc, batch_size=batch_size, skip_errors=skip_errors,
                         show_progress=show_progress, precision=precision)
    finally:
        extract_log.removeFilter(quiet)
    return root / "scan" / "features" / enc.folder_name


class _Without(logging.Filter):
    """Drops log records containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
