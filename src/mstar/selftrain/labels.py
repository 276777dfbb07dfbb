"""Patch labels for the validation probes: the synthetic cohort's truth masks, or a user CSV.

- ``auto``: when a slide sits in a synthetic cohort (``<cohort>/slides/<id>.svs`` beside ``truth.json`` and
  ``masks/<id>.png``), a patch is labelled by the truth mask under it: ``normal``, or the case's cancer type
  for tumour; patches whose majority tissue label covers less than 60 % of their tissue are left out.
  Other slides get no labels.
- a CSV with columns ``slide,x,y,label`` (level-0 top-left coords of the tiles).
- ``none``: no probes.

Unlabelled patches are ``""``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mstar.data.tables import read_csv_table
from mstar.errors import MstarError
from mstar.selftrain.cohort import SelfTrainSlide

MIN_MAJORITY = 0.6
NORMAL = "normal"


def _synthetic_root(slide: SelfTrainSlide) -> Path | None:
    root = Path(slide.slide_path).parent.parent
    if (root / "truth.json").is_file() and (root / "masks" / f"{slide.slide_id}.png").is_file():
        return root
    return None


def _truth(root: Path) -> tuple[dict[str, str], float]:
    truth = json.loads((root / "truth.json").read_text())
    types = {s["slide_id"]: c["cancer_type"] for c in truth["cases"] for s in c["slides"]}
    return types, float(truth.get("mask_mpp", 8.0))


def mask_labels(slide: SelfTrainSlide, mask: np.ndarray, mask_mpp: float, tumour_label: str) -> np.ndarray:
    """Label of each patch of ``slide`` from a label mask (0 background, 1 normal, 2 tumour)."""
    mpp0 = float(slide.attrs.get("mpp_level0") or 0)
    side0 = float(slide.attrs.get("tile_px_level0") or 0)
    if mpp0 <= 0 or side0 <= 0:
        return np.full(slide.n, "", dtype=object)
    scale = mpp0 / mask_mpp  # mask px per level-0 px
    out = np.full(slide.n, "", dtype=object)
    for i, (x, y) in enumerate(slide.coords):
        x0, y0 = round(x * scale), round(y * scale)
        x1, y1 = round((x + side0) * scale), round((y + side0) * scale)
        window = mask[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)]
        tissue = window[window > 0]
        if tissue.size == 0:
            continue
        tumour = float((tissue == 2).mean())
        if tumour >= MIN_MAJORITY:
            out[i] = tumour_label
        elif 1 - tumour >= MIN_MAJORITY:
            out[i] = NORMAL
    return out


def _synthetic(slides: list[SelfTrainSlide]) -> dict[str, np.ndarray]:
    import cv2

    out: dict[str, np.ndarray] = {}
    cache: dict[Path, tuple[dict[str, str], float]] = {}
    for s in slides:
        root = _synthetic_root(s)
        if root is None:
            continue
        if root not in cache:
            cache[root] = _truth(root)
        types, mask_mpp = cache[root]
        if s.slide_id not in types:
            continue
        mask = cv2.imread(str(root / "masks" / f"{s.slide_id}.png"), cv2.IMREAD_UNCHANGED)
        if mask is None:
            continue
        out[s.slide_id] = mask_labels(s, mask, mask_mpp, types[s.slide_id])
    return out


def _from_csv(path: Path, slides: list[SelfTrainSlide]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise MstarError(f"{path}: patch label file not found "
                         "(patch_labels: CSV slide,x,y,label | auto | none)")
    table = read_csv_table(path, "patch label file", "columns slide,x,y,label",
                           dtype={"slide": str, "label": str})
    missing = {"slide", "x", "y", "label"} - set(table.columns)
    if missing:
        raise MstarError(f"{path}: patch label CSV lacks columns {sorted(missing)} (need slide,x,y,label)")
    lookup = {(r.slide, int(r.x), int(r.y)): str(r.label) for r in table.itertuples()}
    return {s.slide_id: np.array([lookup.get((s.slide_id, int(x), int(y)), "") for x, y in s.coords],
                                 dtype=object)
            for s in slides}


def patch_labels(source: str | None, slides: list[SelfTrainSlide]) -> dict[str, np.ndarray]:
    """``{slide_id: (N,) labels}`` (``""`` = unlabelled) for the slides that have any."""
    if source is None or str(source).lower() == "none":
        return {}
    if str(source).lower() == "auto":
        return _synthetic(slides)
    return _from_csv(Path(source), slides)
