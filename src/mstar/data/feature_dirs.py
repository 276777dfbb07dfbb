"""Find the feature file of a slide in any of the layouts users have.

Accepted ``--features`` folders: one encoder's folder holding ``<slide>.h5``/``<slide>.pt`` (ours
``features/<encoder>/``, CLAM ``h5_files/`` or ``pt_files/``, TRIDENT ``features_<encoder>/``, upstream
mSTAR ``pt_files/<model>/``), or a work folder containing exactly one of those (``features/<enc>``).
"""

from __future__ import annotations

import os
from pathlib import Path

from mstar.errors import MstarError
from mstar.utils.atomic import finished_files

FEATURE_SUFFIXES = (".h5", ".pt")


def _has_features(folder: Path) -> bool:
    return bool(finished_files(folder, FEATURE_SUFFIXES))


def feature_slides(folder: str | os.PathLike) -> list[str]:
    """The slide ids of a features folder (``<slide>.h5`` / ``.pt``; writes under way left out), sorted."""
    return sorted({p.stem for p in finished_files(folder, FEATURE_SUFFIXES)})


def resolve_feature_dir(path: str | os.PathLike) -> Path:
    """The folder that directly holds ``<slide>.h5``/``.pt`` files for ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise MstarError(f"{path}: features folder not found (run `mstar extract` first)")
    if _has_features(path):
        return path
    candidates = []
    for sub in ("features", "pt_files", "h5_files"):
        if (path / sub).is_dir():
            candidates += [p for p in [path / sub, *sorted((path / sub).iterdir())]
                           if p.is_dir() and _has_features(p)]
    candidates += [p for p in sorted(path.glob("features_*")) if p.is_dir() and _has_features(p)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise MstarError(f"{path}: no feature files (.h5/.pt) here or in features/<encoder>/; "
                         "pass the folder of one encoder")
    names = ", ".join(str(c.relative_to(path)) for c in candidates)
    raise MstarError(f"{path}: several feature folders ({names}); pass one of them with --features")


def feature_file(folder: Path, slide_id: str) -> Path | None:
    """``folder/<slide_id>.h5`` or ``.pt`` (h5 preferred), or None."""
    for suffix in FEATURE_SUFFIXES:
        candidate = folder / f"{slide_id}{suffix}"
        if candidate.exists():
            return candidate
    return None


def feature_files_for(features: str | os.PathLike, slide_ids: list[str]) -> list[Path]:
    """The feature files of ``slide_ids`` in a features folder (any layout); missing slides are skipped.

    This is what a run reads, so it is what a run's fingerprint digests (other files in the folder, e.g.
    another cohort extracted into it later, never change the run)."""
    folder = resolve_feature_dir(features)
    return [f for f in (feature_file(folder, s) for s in slide_ids) if f is not None]


IDENTITY_KEYS = ("encoder", "encoder_sha", "checkpoint", "dim", "precision", "target_mpp", "tile_px",
                 "overlap_px", "min_tissue", "mask_mpp", "fill_holes", "min_tissue_area_um2",
                 "min_hole_area_um2", "remove_pen", "context_mpp")


def folder_identity(folder: str | os.PathLike) -> dict:
    """:func:`features_identity` of a features folder (its first file; every file of a folder shares it);
    empty for a folder without feature files."""
    files = finished_files(folder, FEATURE_SUFFIXES)
    return features_identity(files[0]) if files else {}


def features_identity(path: str | os.PathLike) -> dict:
    """What made a features file: the encoder (name, weights hash, checkpoint file name, width) and the
    tiling settings (``target_mpp``, ``tile_px``, ...). Keys the file lacks (CLAM/TRIDENT files) are left
    out. A run records this so that new slides are tiled and embedded the same way."""
    from mstar.features.io import load_features

    _, _, attrs = load_features(path)
    out = {}
    for key in IDENTITY_KEYS:
        value = attrs.get(key)
        if value is None:
            continue
        out[key] = value.item() if hasattr(value, "item") else value
    return out


def check_stage1_features(features: str | os.PathLike, meta: dict, checkpoint: object) -> None:
    """Refuse a features folder of another patch encoder than the one a stage-1 model was pretrained on
    (``meta["features"]``, recorded by ``mstar pretrain``; older checkpoints are checked by width only)."""
    folder = resolve_feature_dir(features)
    check_same_encoder(folder, folder_identity(folder), meta.get("features") or {},
                       "use features of the patch encoder it was pretrained on",
                       f"{checkpoint} was pretrained on")


def check_same_encoder(folder: str | os.PathLike, attrs: dict, trained: dict, fix: str,
                       model: str = "the run was trained on") -> None:
    """Refuse features made by another encoder than the one a model was trained on (by weights hash).

    Args:
        folder: The features folder (named in the error).
        attrs: Its identity or a feature file's attributes (``encoder``, ``encoder_sha``).
        trained: The training features' identity (``features_identity``).
        fix: What the user should do instead, ending the error line.
        model: Who was trained on ``trained`` ("the run was trained on", "stage1.pt was pretrained on").

    Raises:
        MstarError: Both record a hash and the hashes differ. (Files without one are checked by width only,
            by the caller.)
    """
    sha, want = attrs.get("encoder_sha"), trained.get("encoder_sha")
    if want and sha and sha != want:
        raise MstarError(f"{folder}: features from encoder {attrs.get('encoder', '?')} ({str(sha)[:24]}...), "
                         f"but {model} {trained.get('encoder', '?')} ({str(want)[:24]}...); "
                         f"{fix}")
