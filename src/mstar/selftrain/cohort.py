"""The slides of a stage-2 run: tiles file + stored features per slide, checked against each other.

A slide takes part when it has both ``tiles/<slide>.h5`` and a features file. Feature row ``i`` is the
patch at the features file's ``coords[i]``; that patch is read from the slide with the tiles file's
``read_level``/``read_px``. Features whose coords are not in the tiles file (another tiling) are an error.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mstar.errors import MstarError
from mstar.features.io import feature_rows

log = logging.getLogger(__name__)


@dataclass
class SelfTrainSlide:
    """One slide: where to read its patches and where its stored features are.

    Attributes:
        slide_id: the file stem shared by tiles and features.
        slide_path: the slide file.
        coords: ``(N, 2)`` level-0 top-left of feature row ``i``.
        read_level: pyramid level to read.
        read_px: pixels read at that level (square).
        mpp: level-0 µm/px override recorded by tiling, else None.
        features_file: the stored features.
        tiles_file: the tiles file.
        attrs: the tiles file's attributes (``mpp_level0``, ``tile_px_level0``, ...).
    """

    slide_id: str
    slide_path: str
    coords: np.ndarray
    read_level: int
    read_px: int
    mpp: float | None
    features_file: Path
    tiles_file: Path
    attrs: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.coords)


def tiles_folder(path: str | Path) -> Path:
    """``DIR/tiles`` when it exists, else ``DIR`` itself when it holds ``*.h5`` files."""
    path = Path(path)
    if (path / "tiles").is_dir():
        return path / "tiles"
    if path.is_dir() and any(p.suffix == ".h5" for p in path.iterdir()):
        return path
    raise MstarError(f"{path}: no tiles files (tiles/<slide>.h5); run `mstar tile SLIDES --out {path}` first "
                     "or pass the folder that holds tiles/")


def _match(slide_id: str, features_file: Path, tiles_file: Path, tile_coords: np.ndarray) -> np.ndarray:
    """The coords of the feature rows, checked against the tiles file."""
    n, _, coords = feature_rows(features_file)
    if coords is None:
        if n != len(tile_coords):
            raise MstarError(f"{features_file}: {n} features without coords but {tiles_file} has "
                             f"{len(tile_coords)} tiles; extract the features from these tiles")
        return tile_coords
    known = {(int(x), int(y)) for x, y in tile_coords}
    missing = sum((int(x), int(y)) not in known for x, y in coords)
    if missing:
        raise MstarError(f"{features_file}: {missing} of {n} feature coords are not tiles of {tiles_file} "
                         "(another tiling?); pass the --tiles folder these features were extracted from")
    return coords


def load_slides(tiles: str | Path, features: str | Path,
                slides_dir: str | Path | None = None) -> list[SelfTrainSlide]:
    """Pair every features file with its tiles file and slide.

    Raises:
        MstarError: no tiles files, a features file without a tiles file, coords that do not match, a
            slide that cannot be found, or no slide with both.
    """
    from mstar.data.feature_dirs import FEATURE_SUFFIXES, resolve_feature_dir
    from mstar.features.extract import load_slide_tiles

    tiles_dir = tiles_folder(tiles)
    feat_dir = resolve_feature_dir(features)
    feature_files: dict[str, Path] = {}
    for p in sorted(feat_dir.iterdir()):
        if p.suffix in FEATURE_SUFFIXES and not p.name.startswith(".") and p.stem not in feature_files:
            feature_files[p.stem] = p  # .h5 sorts before .pt: h5 preferred
    if not feature_files:
        raise MstarError(f"{feat_dir}: no feature files (.h5/.pt); run `mstar extract` first")
    tile_ids = {p.stem.removesuffix("_patches"): p for p in tiles_dir.glob("*.h5")
                if not p.name.startswith(".")}
    out = []
    for sid, ff in feature_files.items():
        tf = tile_ids.get(sid)
        if tf is None:
            raise MstarError(f"{ff}: no tiles file {tiles_dir / (sid + '.h5')}; pass the --tiles folder "
                             "these features were extracted from (stage 2 reads the patch images through it)")
        t = load_slide_tiles(tf, Path(slides_dir) if slides_dir else None)
        coords = _match(sid, ff, tf, t.coords)
        if len(coords) == 0:
            log.warning("%s: no patches; skipped", ff)
            continue
        out.append(SelfTrainSlide(sid, t.slide_path, coords, t.read_level, t.read_px, t.mpp, ff, tf,
                                  dict(t.attrs)))
    unused = sorted(set(tile_ids) - set(feature_files))
    if unused:
        log.warning("%d tiles file(s) have no features in %s (e.g. %s); they are not used", len(unused),
                    feat_dir, unused[0])
    if not out:
        raise MstarError(f"{feat_dir}: no slide has both features and patches")
    return out


def features_dim(slide: SelfTrainSlide) -> int:
    """Width D of a slide's stored features."""
    return feature_rows(slide.features_file)[1]


def split_slides(slides: list[SelfTrainSlide], val_fraction: float, seed: int,
                 val_slides: list[str] | None = None) -> tuple[list[SelfTrainSlide], list[SelfTrainSlide]]:
    """``(train, held_out)``: the named ``val_slides``, else a seeded ``val_fraction`` (at least one each).

    Raises:
        MstarError: unknown names in ``val_slides`` or fewer than 2 slides in all.
    """
    ids = [s.slide_id for s in slides]
    if val_slides:
        unknown = sorted(set(val_slides) - set(ids))
        if unknown:
            raise MstarError(f"config: val_slides {unknown[:3]} have no features/tiles")
        held = set(val_slides)
    else:
        if len(slides) < 2:
            raise MstarError(f"{len(slides)} slide(s): stage 2 needs at least 2 "
                             "(one held out for validation)")
        n_val = min(len(slides) - 1, max(1, round(val_fraction * len(slides))))
        order = sorted(ids, key=lambda s: zlib.crc32(f"{seed}:{s}".encode()))
        held = set(order[:n_val])
    train = [s for s in slides if s.slide_id not in held]
    val = [s for s in slides if s.slide_id in held]
    if not train:
        raise MstarError("config: val_slides leaves no training slide")
    return train, val
