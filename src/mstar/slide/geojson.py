"""QuPath GeoJSON: tiles as detections (with measurements and a classification) and tissue contours as
annotations, in level-0 pixel coordinates.

QuPath (0.3+) imports a ``FeatureCollection`` whose features are ``Polygon`` geometries with
``properties.objectType`` (``detection`` or ``annotation``), optional ``properties.classification``
(``{"name", "color": [r, g, b]}``) and ``properties.measurements`` (a ``{name: number}`` mapping). Polygon
rings are closed (first point repeated last), exterior rings counter-clockwise in image coordinates as QuPath
writes them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from mstar.slide.tissue import TissueMask
from mstar.utils.atomic import write_text_atomic

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def class_colour(name: str, names: Sequence[str]) -> list[int]:
    """A stable colour per class (its index in ``names``)."""
    i = list(names).index(name) if name in names else len(names)
    return list(PALETTE[i % len(PALETTE)])


def _square(x: float, y: float, side: float) -> list[list[float]]:
    return [[x, y], [x, y + side], [x + side, y + side], [x + side, y], [x, y]]


def tile_detections(coords: np.ndarray, tile_px_level0: int, measurements: Mapping[str, np.ndarray],
                    classification: dict | None = None) -> list[dict]:
    """One detection per tile: a square of ``tile_px_level0`` at its level-0 top-left ``coords`` ``(N, 2)``,
    with one measurement per entry of ``measurements`` (arrays of ``N`` numbers; NaN is left out, as
    QuPath reads only numbers)."""
    out = []
    for i, (x, y) in enumerate(np.asarray(coords, dtype=float)):
        values = {k: float(v[i]) for k, v in measurements.items() if math.isfinite(float(v[i]))}
        props = {"objectType": "detection", "name": f"tile {i}", "measurements": values}
        if classification is not None:
            props["classification"] = classification
        out.append({"type": "Feature", "geometry": {"type": "Polygon",
                                                    "coordinates": [_square(x, y, tile_px_level0)]},
                    "properties": props})
    return out


def tissue_annotations(mask: TissueMask, min_points: int = 4) -> list[dict]:
    """The tissue regions of ``mask`` as polygon annotations (holes as interior rings), in level-0 px."""
    contours, hierarchy = cv2.findContours(mask.tissue.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]

    def ring(contour: np.ndarray) -> list[list[float]]:
        pts = (contour[:, 0, :].astype(float) * mask.downsample).tolist()
        return pts + [pts[0]]

    out = []
    for i, contour in enumerate(contours):
        if hierarchy[i][3] != -1 or len(contour) < min_points:  # holes are added to their parent
            continue
        rings = [ring(contour)]
        child = hierarchy[i][2]
        while child != -1:
            if len(contours[child]) >= min_points:
                rings.append(ring(contours[child]))
            child = hierarchy[child][0]
        out.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": {"objectType": "annotation", "name": f"tissue {len(out) + 1}",
                                   "classification": {"name": "Tissue", "color": [0, 160, 0]}}})
    return out


def write_geojson(path: str | os.PathLike, features: list[dict]) -> None:
    """Write a ``FeatureCollection`` (atomically)."""
    write_text_atomic(path, json.dumps({"type": "FeatureCollection", "features": features}))
