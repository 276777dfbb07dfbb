"""Free-text pathology reports: diagnosis (with synonyms), grade, TP53 status and size, plus distractors."""

from __future__ import annotations

import numpy as np

from mstar.data.synthetic.truth import CaseTruth
from mstar.data.synthetic.types import CANCER_TYPES

GRADE_WORDS = {1: ("well differentiated", "grade 1"), 2: ("moderately differentiated", "grade 2"),
               3: ("poorly differentiated", "grade 3")}
MARKER_SENTENCES = {
    1: ("TP53 immunohistochemistry shows aberrant, mutant-pattern staining.",
        "p53 immunostain: mutant pattern (diffuse strong nuclear staining).",
        "Molecular testing identified a TP53 mutation."),
    0: ("TP53 immunohistochemistry shows a wild-type staining pattern.",
        "p53 immunostain: wild-type pattern.",
        "No TP53 mutation was identified by molecular testing."),
}
DISTRACTORS = (
    "Specimen received fresh and subsequently fixed in formalin.",
    "Surgical margins are free of tumor.",
    "Lymphovascular invasion is not identified.",
    "The background tissue shows mild chronic inflammation.",
    "Sections were submitted in six cassettes.",
    "Clinical history: mass identified on imaging.",
    "Intraoperative consultation was not requested.",
    "Perineural invasion is not identified.",
    "Frozen section diagnosis agrees with the final diagnosis.",
    "Block A3 was selected for ancillary studies.",
)


def write_report(case: CaseTruth, rng: np.random.Generator) -> str:
    """One report; the facts come from ``case``, the wording and the sentence order from ``rng``."""
    ctype = CANCER_TYPES[case.cancer_type]
    name = ctype.names[int(rng.integers(len(ctype.names)))]
    procedure = ctype.procedures[int(rng.integers(len(ctype.procedures)))]
    words, short = GRADE_WORDS[case.grade]
    grade = (f"{ctype.grade_system} {case.grade}" if rng.random() < 0.5 else f"{words} ({short})")
    size_phrase = (f"Tumor size: {case.size_cm:.1f} cm in greatest dimension." if rng.random() < 0.5
                   else f"The tumor measures {case.size_cm:.1f} cm.")
    marker = MARKER_SENTENCES[case.marker][int(rng.integers(3))]
    body = [f"{procedure.capitalize()}: {name}, {grade}.", size_phrase, marker]
    picked = rng.choice(len(DISTRACTORS), size=int(rng.integers(1, 4)), replace=False)
    extras = [DISTRACTORS[i] for i in picked]
    sentences = body[:1] + list(rng.permutation(body[1:] + extras))
    return "FINAL DIAGNOSIS: " + " ".join(sentences)
