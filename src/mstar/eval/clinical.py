"""Clinical check beyond n-grams: does a report state the right cancer type and TP53 status?

Rules for the synthetic cohort's wording (``data/synthetic/types.py`` names, ``reports.py`` marker
sentences), applied to the cleaned text (:func:`mstar.data.report_text.clean_report`) so they work on raw
reports and on generated, already-cleaned ones alike:

- cancer type: a report states type T when it contains one of T's diagnosis names (whole words) and no
  name of another type; otherwise nothing is stated (``None``) and the report counts as wrong.
- TP53: "mutant", "aberrant" or "tp53 mutation" (not "no tp53 mutation") → mutant (1); "wild-type" /
  "wild type" / "wildtype" / "no tp53 mutation" → wild type (0); both or neither → ``None``.

BLEU rewards reproducing the template; these rates measure whether the facts are right.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mstar.data.report_text import clean_report
from mstar.data.synthetic.types import CANCER_TYPES
from mstar.errors import MstarError

_NAMES = {code: tuple(clean_report(name).removesuffix(" .") for name in ct.names)
          for code, ct in CANCER_TYPES.items()}
_MUTANT = re.compile(r"\bmutant\b|\baberrant\b|(?<!\bno )\btp53 mutation\b")
_WILD = re.compile(r"\bwild-?type\b|\bwild type\b|\bno tp53 mutation\b")


def extract_cancer_type(text: str) -> str | None:
    """The cancer type code a report states (``"BRCA"``, ...), or None when none or several are stated."""
    padded = f" {clean_report(text)} "
    found = {code for code, names in _NAMES.items() if any(f" {name} " in padded for name in names)}
    return found.pop() if len(found) == 1 else None


def extract_marker(text: str) -> int | None:
    """The TP53 status a report states: 1 mutant, 0 wild type, None when absent or contradictory."""
    cleaned = clean_report(text)
    mutant, wild = bool(_MUTANT.search(cleaned)), bool(_WILD.search(cleaned))
    return None if mutant == wild else int(mutant)


def _truth_of(value: Any) -> tuple[str | None, int | None]:
    if isinstance(value, str):  # a reference report: read the facts from it
        return extract_cancer_type(value), extract_marker(value)
    if isinstance(value, Mapping):
        return value.get("cancer_type"), value.get("marker")
    return getattr(value, "cancer_type", None), getattr(value, "marker", None)


@dataclass
class ClinicalScores:
    """Fractions of generated reports that state the true facts.

    Attributes:
        cancer_type_accuracy: Correct cancer type stated / reports with a known type.
        marker_accuracy: Correct TP53 status stated / reports with a known status (None when none known).
        cancer_type_stated: Reports stating exactly one type / reports with a known type.
        cancer_type_majority: Frequency of the most common true type (the majority-guess baseline).
        n: Reports scored.
        per_report: ``{id: {"cancer_type", "marker", "true_cancer_type", "true_marker"}}``.
    """

    cancer_type_accuracy: float | None
    marker_accuracy: float | None
    cancer_type_stated: float | None
    cancer_type_majority: float | None
    n: int
    per_report: dict[Hashable, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The scores without the per-report table."""
        out = asdict(self)
        out.pop("per_report")
        return out


def clinical_accuracy(generated: Mapping[Hashable, str], truth: Mapping[Hashable, Any]) -> ClinicalScores:
    """Score the facts stated by generated reports.

    Args:
        generated: Report id → generated text.
        truth: Report id → the truth, as ``{"cancer_type": code, "marker": 0|1}``, an object with those
            attributes (``CaseTruth``), or a reference report text (facts extracted by the same rules).

    Returns:
        :class:`ClinicalScores`.
    """
    missing = [k for k in generated if k not in truth]
    if missing:
        raise MstarError(f"no truth for generated report(s) {', '.join(map(str, missing[:5]))}")
    if not generated:
        raise MstarError("no generated reports to score")
    per, type_hits, type_n, stated, marker_hits, marker_n = {}, 0, 0, 0, 0, 0
    for key, text in generated.items():
        true_type, true_marker = _truth_of(truth[key])
        got_type, got_marker = extract_cancer_type(text), extract_marker(text)
        per[key] = {"cancer_type": got_type, "marker": got_marker, "true_cancer_type": true_type,
                    "true_marker": true_marker}
        if true_type is not None:
            type_n += 1
            type_hits += got_type == true_type
            stated += got_type is not None
        if true_marker is not None:
            marker_n += 1
            marker_hits += got_marker == int(true_marker)
    types = Counter(p["true_cancer_type"] for p in per.values() if p["true_cancer_type"] is not None)
    return ClinicalScores(
        cancer_type_accuracy=type_hits / type_n if type_n else None,
        marker_accuracy=marker_hits / marker_n if marker_n else None,
        cancer_type_stated=stated / type_n if type_n else None,
        cancer_type_majority=max(types.values()) / type_n if type_n else None,
        n=len(per), per_report=per)
