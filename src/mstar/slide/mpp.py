"""Microns per pixel from slide metadata, in the order scanners and converters record it."""

from __future__ import annotations

from collections.abc import Mapping

# TIFF ResolutionUnit: 2 = inch, 3 = centimetre.
_MICRONS_PER_UNIT = {"2": 25_400.0, "inch": 25_400.0, "3": 10_000.0, "centimeter": 10_000.0, "cm": 10_000.0}
PLAUSIBLE_MPP = (0.05, 50.0)


def _as_float(value: object) -> float | None:
    try:
        out = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def mpp_from_properties(props: Mapping[str, str]) -> float | None:
    """Level-0 µm/px from OpenSlide/tiffslide properties, or None when the metadata holds none.

    Looks at, in order: the reader's normalised value (``openslide.mpp-x``/``tiffslide.mpp-x``), the
    Aperio description field ``aperio.MPP``, then the TIFF resolution tags (X resolution per inch/cm).
    Values outside a plausible range (0.05–50 µm/px, e.g. a 72-dpi default tag) are ignored.
    """
    for key in ("openslide.mpp-x", "tiffslide.mpp-x", "aperio.MPP"):
        mpp = _as_float(props.get(key))
        if mpp and PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]:
            return mpp
    xres = _as_float(props.get("tiff.XResolution"))
    unit = str(props.get("tiff.ResolutionUnit", "")).strip().lower()
    if xres and unit in _MICRONS_PER_UNIT:
        mpp = _MICRONS_PER_UNIT[unit] / xres
        if PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]:
            return mpp
    return None


def magnification_from_mpp(mpp: float) -> float:
    """Nominal objective magnification for a µm/px (10 µm/px at 1x; 0.25 -> 40x, 0.5 -> 20x)."""
    return 10.0 / mpp
