"""The tiles file ``tiles/<slide_id>.h5``: level-0 coordinates plus the physical truth of the read.

Schema (``mstar.tiles/1``): dataset ``coords`` int64 (N, 2) = level-0 top-left (x, y); dataset
``tissue_fraction`` float32 (N,). Attributes live on ``coords`` (where CLAM and TRIDENT readers look) and
are mirrored on the file root:

- ours, unambiguous: ``slide_id``, ``slide_path``, ``mpp_level0``, ``target_mpp``, ``tile_px``,
  ``tile_mpp``, ``tile_px_level0``, ``read_level``, ``read_px``, ``read_downsample``, ``overlap_px``,
  ``step_px_level0``, ``level0_width``, ``level0_height``, ``min_tissue``, ``tissue_fraction_slide``,
  ``seconds``, ``status``;
- TRIDENT: ``patch_size_level0``, ``level0_magnification``, ``target_magnification``, ``overlap``,
  ``name``, ``level0_width``, ``level0_height``;
- CLAM (``patch_level``, ``patch_size`` = pixels read at that level, ``downsample``, ``level_dim``,
  ``downsampled_level_dim``, ``name``): written only when ``read_region(coord, patch_level,
  (patch_size, patch_size))`` covers exactly the tile. ``patch_size`` therefore has CLAM's meaning; the
  TRIDENT meaning (pixels at the target) is ``tile_px``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mstar.errors import MstarError
from mstar.slide.mpp import magnification_from_mpp
from mstar.slide.plan import ReadPlan
from mstar.utils.atomic import atomic_path

SCHEMA = "mstar.tiles/1"


def tiles_attrs(plan: ReadPlan, slide_id: str, slide_path: str, level_dimensions, extra: dict) -> dict:
    """All attributes of a tiles file for one slide and read plan."""
    w0, h0 = level_dimensions[0]
    attrs = {
        "schema": SCHEMA,
        "slide_id": slide_id,
        "slide_path": slide_path,
        **plan.as_attrs(),
        "level0_width": int(w0),
        "level0_height": int(h0),
        # TRIDENT
        "patch_size_level0": int(plan.tile_px_level0),
        "level0_magnification": round(magnification_from_mpp(plan.mpp_level0), 2),
        "target_magnification": round(magnification_from_mpp(plan.target_mpp), 2),
        "overlap": int(plan.overlap_px),
        "name": slide_id,
        **extra,
    }
    if plan.clam_exact:
        lw, lh = level_dimensions[plan.read_level]
        attrs.update({
            "patch_level": int(plan.read_level),
            "patch_size": int(plan.read_px),
            "downsample": np.array([plan.read_downsample, plan.read_downsample], dtype=np.float64),
            "level_dim": np.array([lw, lh], dtype=np.int64),
            "downsampled_level_dim": np.array([lw, lh], dtype=np.int64),
        })
    return attrs


def write_tiles(path: str | os.PathLike, coords: np.ndarray, tissue_fraction: np.ndarray,
                attrs: dict, datasets: dict[str, np.ndarray] | None = None) -> None:
    """Write a tiles file atomically (a killed run never leaves a partial file under ``path``); ``datasets``
    adds arrays beside ``coords`` (e.g. ``skipped_coords`` of a hierarchical scan)."""
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("coords", data=coords)
        f.create_dataset("tissue_fraction", data=np.asarray(tissue_fraction, dtype=np.float32).reshape(-1))
        for name, array in (datasets or {}).items():
            f.create_dataset(name, data=array)
        for key, value in attrs.items():
            ds.attrs[key] = value
            f.attrs[key] = value


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_tiles(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read ``(coords (N, 2) int64, attrs)`` from a tiles file (ours, CLAM's or TRIDENT's).

    For CLAM/TRIDENT files without our physical attributes, ``read_level``/``read_px`` fall back to
    ``patch_level``/``patch_size`` (CLAM's defaults 0/512 when absent, as upstream mSTAR does).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "coords" not in f:
                raise MstarError(f"{path}: no 'coords' dataset; is this a tiles file from `mstar tile` "
                                 "or CLAM?")
            coords = np.asarray(f["coords"][:], dtype=np.int64).reshape(-1, 2)
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            attrs.update({k: _plain(v) for k, v in f["coords"].attrs.items()})
    except OSError as exc:
        raise MstarError(f"{path}: unreadable HDF5 file ({exc}); delete it and re-run `mstar tile`") from exc
    if "read_level" not in attrs:
        attrs["read_level"] = int(attrs.get("patch_level", 0))
        attrs["read_px"] = int(attrs.get("patch_size", 512))
    attrs.setdefault("slide_id", path.stem.removesuffix("_patches"))
    return coords, attrs
