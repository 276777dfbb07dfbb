"""Reading patch features, whichever tool wrote them: ``load_features(path) -> (features, coords, attrs)``.

Accepted files:

- ours: ``features/<encoder>/<slide>.h5`` (``features`` (N, D), ``coords`` (N, 2), attrs);
- CLAM / upstream mSTAR: ``h5_files/[<model>/]<slide>.h5`` (``features`` + ``coords``) and
  ``pt_files/[<model>/]<slide>.pt`` (a tensor (N, D)); coords of a ``.pt`` come from the sibling
  ``h5_files``/``features`` file when there is one;
- TRIDENT: ``features_<encoder>/<slide>.h5`` (``features`` + ``coords`` carrying the patching attrs).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mstar.errors import MstarError, first_line

SCHEMA = "mstar.features/1"


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def features_path(root: str | os.PathLike, encoder_folder: str, slide_id: str) -> Path:
    """``root/features/<encoder_folder>/<slide_id>.h5``."""
    return Path(root) / "features" / encoder_folder / f"{slide_id}.h5"


def pt_path(root: str | os.PathLike, encoder_folder: str, slide_id: str) -> Path:
    """``root/pt_files/<encoder_folder>/<slide_id>.pt`` (the upstream/CLAM mirror)."""
    return Path(root) / "pt_files" / encoder_folder / f"{slide_id}.pt"


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    try:
        with h5py.File(path, "r") as f:
            if "features" not in f:
                raise MstarError(f"{path}: no 'features' dataset; is this a features file (mstar extract, "
                                 "CLAM h5_files, TRIDENT features_<encoder>)?")
            feats = np.asarray(f["features"][:])
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            coords = None
            if "coords" in f:
                coords = np.asarray(f["coords"][:], dtype=np.int64)
                attrs.update({k: _plain(v) for k, v in f["coords"].attrs.items() if k not in attrs})
            attrs.update({k: _plain(v) for k, v in f["features"].attrs.items() if k not in attrs})
    except OSError as exc:
        message = f"{path}: unreadable HDF5 file ({exc}); delete it and re-run `mstar extract`"
        raise MstarError(message) from exc
    return feats, coords, attrs


def _sibling_h5(path: Path) -> Path | None:
    """The h5 beside a ``pt_files/...`` file: same relative path under ``h5_files`` or ``features``."""
    parts = path.parts
    if "pt_files" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("pt_files")
    for folder in ("h5_files", "features"):
        candidate = Path(*parts[:i], folder, *parts[i + 1:]).with_suffix(".h5")
        if candidate.is_file():
            return candidate
    return None


def _read_pt(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise MstarError(f"{path}: unreadable .pt features ({first_line(exc)}); re-extract it") from exc
    if isinstance(obj, dict) and "features" in obj:
        obj = obj["features"]
    if not isinstance(obj, torch.Tensor):
        raise MstarError(f"{path}: expected a tensor (N, D) saved with torch.save, got {type(obj).__name__}")
    feats = obj.float().numpy() if obj.dtype == torch.bfloat16 else obj.numpy()
    coords, attrs = None, {}
    sibling = _sibling_h5(path)
    if sibling is not None:
        with h5py.File(sibling, "r") as f:
            if "coords" in f:
                coords = np.asarray(f["coords"][:], dtype=np.int64)
                attrs = {k: _plain(v) for k, v in f.attrs.items()}
                attrs.update({k: _plain(v) for k, v in f["coords"].attrs.items() if k not in attrs})
        attrs["coords_file"] = str(sibling)
    return feats, coords, attrs


def load_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one slide's patch features.

    Args:
        path: a ``.h5`` (ours, CLAM ``h5_files``, TRIDENT) or ``.pt`` (CLAM/upstream ``pt_files``) file.

    Returns:
        ``features`` (N, D) as stored (float32 normally), ``coords`` (N, 2) int64 level-0 top-left (all -1
        when the file carries none and no sibling h5 gives them; then ``attrs['coords_known']`` is False), and
        ``attrs`` (file, coords and features attributes merged; empty for a bare ``.pt``).

    Raises:
        MstarError: missing or unreadable file, no ``features``, coords whose count differs from N, or
            features that are not finite (NaN/inf: a training loss would become NaN far from the cause).
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: features file not found; run `mstar extract` first")
    if path.suffix == ".pt":
        feats, coords, attrs = _read_pt(path)
    elif path.suffix in (".h5", ".hdf5"):
        feats, coords, attrs = _read_h5(path)
    else:
        raise MstarError(f"{path}: unknown features format (expected .h5 or .pt)")
    if feats.ndim == 3 and feats.shape[0] == 1:  # some writers keep a batch axis (1, N, D)
        feats = feats[0]
    if feats.ndim != 2:
        raise MstarError(f"{path}: features must be (N, D), got shape {feats.shape}")
    attrs["coords_known"] = coords is not None
    if coords is None:
        coords = np.full((len(feats), 2), -1, np.int64)
    coords = coords.reshape(-1, 2)
    if len(coords) != len(feats):
        raise MstarError(f"{path}: {len(feats)} features but {len(coords)} coords; the file is inconsistent, "
                         "re-extract it")
    if feats.dtype.kind == "f" and not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        raise MstarError(f"{path}: {bad} of {len(feats)} patch features are NaN or infinite; re-extract this "
                         "slide (`mstar extract --overwrite`) or leave it out of the manifest")
    return feats, coords, attrs


def feature_rows(path: str | os.PathLike) -> tuple[int, int, np.ndarray | None]:
    """``(N, D, coords or None)`` of a features file, without reading the features of an ``.h5``.

    Raises:
        MstarError: As :func:`load_features`.
    """
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        feats, coords, attrs = load_features(path)
        return int(feats.shape[0]), int(feats.shape[1]), coords if attrs.get("coords_known") else None
    if not path.is_file():
        raise MstarError(f"{path}: features file not found; run `mstar extract` first")
    try:
        with h5py.File(path, "r") as f:
            if "features" not in f:
                raise MstarError(f"{path}: no 'features' dataset; is this a features file?")
            shape = f["features"].shape
            coords = np.asarray(f["coords"][:], np.int64).reshape(-1, 2) if "coords" in f else None
    except OSError as exc:
        raise MstarError(f"{path}: unreadable HDF5 file ({exc}); delete it and re-run "
                         "`mstar extract`") from exc
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise MstarError(f"{path}: features must be (N, D), got shape {shape}")
    return int(shape[0]), int(shape[1]), coords
