"""The cancer types of the synthetic cohort: how each looks, what reports call it, which genes mark it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CancerType:
    """Morphology (physical units) and vocabulary of one synthetic cancer type."""

    code: str
    organ: str
    arrangement: str                 # "glands" | "sheets" | "nests"
    nucleus_radius_um: float         # mean tumour nucleus radius
    nucleus_elongation: float        # major / minor axis
    cell_spacing_um: float           # mean distance between tumour nuclei
    cytoplasm_rgb: tuple[int, int, int]
    nucleus_rgb: tuple[int, int, int]
    names: tuple[str, ...]           # report / prompt synonyms
    procedures: tuple[str, ...]
    grade_system: str
    hazard_offset: float             # added to the latent risk


CANCER_TYPES: dict[str, CancerType] = {
    "BRCA": CancerType(
        code="BRCA", organ="breast", arrangement="glands", nucleus_radius_um=3.6, nucleus_elongation=1.25,
        cell_spacing_um=9.0, cytoplasm_rgb=(222, 150, 196), nucleus_rgb=(92, 58, 150),
        names=("invasive ductal carcinoma", "infiltrating ductal carcinoma of the breast",
               "invasive breast carcinoma of no special type", "ductal carcinoma, invasive"),
        procedures=("left breast, lumpectomy", "right breast, segmental mastectomy",
                    "left breast, modified radical mastectomy"),
        grade_system="Nottingham histologic grade", hazard_offset=0.0),
    "LUSC": CancerType(
        code="LUSC", organ="lung", arrangement="sheets", nucleus_radius_um=4.4, nucleus_elongation=1.15,
        cell_spacing_um=14.0, cytoplasm_rgb=(236, 146, 160), nucleus_rgb=(78, 44, 128),
        names=("squamous cell carcinoma of the lung", "lung squamous cell carcinoma",
               "keratinizing squamous cell carcinoma", "pulmonary squamous carcinoma"),
        procedures=("right upper lobe, lobectomy", "left lower lobe, lobectomy", "right lung, pneumonectomy"),
        grade_system="histologic grade", hazard_offset=0.35),
    "KIRC": CancerType(
        code="KIRC", organ="kidney", arrangement="nests", nucleus_radius_um=2.7, nucleus_elongation=1.05,
        cell_spacing_um=13.0, cytoplasm_rgb=(240, 218, 230), nucleus_rgb=(60, 36, 110),
        names=("clear cell renal cell carcinoma", "renal cell carcinoma, clear cell type",
               "conventional clear cell renal carcinoma", "kidney clear cell carcinoma"),
        procedures=("left kidney, radical nephrectomy", "right kidney, partial nephrectomy",
                    "right kidney, radical nephrectomy"),
        grade_system="ISUP nuclear grade", hazard_offset=-0.35),
}

MARKER_NAME = "TP53"
MARKER_LABELS = ("wildtype", "mutant")  # index = marker status


def cancer_codes(n_types: int) -> list[str]:
    """The first ``n_types`` cancer type codes."""
    codes = list(CANCER_TYPES)
    if not 2 <= n_types <= len(codes):
        raise ValueError(f"n_types must be between 2 and {len(codes)}")
    return codes[:n_types]
