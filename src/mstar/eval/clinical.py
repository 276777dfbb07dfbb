"""Clinical check beyond n-grams: does a report state the right cancer type (class) and TP53 status?

The classes and their names come from a prompt / knowledge file in the zero-shot schema
(``{"0": {"classnames": {CODE: [name, synonym, ...]}, "templates": [...]}}``, read by
:func:`mstar.data.prompts.read_classnames`), a packaged set name, or a ``{code: [names]}`` mapping; the
default is the synthetic cohort's packaged ``synthetic_cancer_type`` (the names of
``data/synthetic/types.py``). The rules read the cleaned text (:func:`mstar.data.report_text.clean_report`)
so they work on raw reports and on generated, already-cleaned ones alike:

- class: a report states class C when one of C's names occurs (whole words) in a sentence that does not
  negate it (:func:`mstar.data.negation.is_negated`: "negative for mesothelioma", "no component of small
  cell carcinoma is identified", "features of adenocarcinoma are not seen" state nothing) and no other
  class is stated; a mention inside a longer mention of another class ("small cell carcinoma" in
  "non-small cell carcinoma ...") does not count. Otherwise nothing is stated (``None``) and the report
  counts as wrong.
- TP53 (synthetic wording of ``data/synthetic/reports.py``): "mutant", "aberrant" or "tp53 mutation" (not
  "no tp53 mutation") → mutant (1); "wild-type" / "wild type" / "wildtype" / "no tp53 mutation" → wild
  type (0); both or neither → ``None``.

A true class the file does not name cannot be judged: the scores say so (``None`` and a one-line warning
naming the classes and the setting to change), never a silent 0. BLEU rewards reproducing the template;
these rates measure whether the facts are right.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from mstar.data.negation import is_negated, sentences
from mstar.data.prompts import read_classnames, resolve_prompts
from mstar.data.report_text import clean_report
from mstar.errors import MstarError

DEFAULT_CLASSES = "synthetic_cancer_type"
CLASSES_HINT = "set `classes` (--set classes=<prompts.json>) to a file naming them"
_MUTANT = re.compile(r"\bmutant\b|\baberrant\b|(?<!\bno )\btp53 mutation\b")
_WILD = re.compile(r"\bwild-?type\b|\bwild type\b|\bno tp53 mutation\b")


@dataclass(frozen=True)
class ClassNames:
    """The classes a report may state and their names (cleaned, as they appear in cleaned text).

    Attributes:
        names: ``{class code: (cleaned name, ...)}`` in the source's order.
        source: Where they came from (a file, a packaged set, or ``"mapping"``).
    """

    names: dict[str, tuple[str, ...]]
    source: str

    @property
    def codes(self) -> list[str]:
        return list(self.names)

    @classmethod
    def of(cls, classes: ClassesLike = None) -> ClassNames:
        """Class names from a prompt / knowledge file, a packaged set name, a mapping, or the default."""
        if isinstance(classes, ClassNames):
            return classes
        if classes is None or isinstance(classes, (str, os.PathLike)):
            return _from_file(str(classes if classes is not None else DEFAULT_CLASSES))
        return _from_mapping(classes)

    def stated(self, text: str) -> set[str]:
        """The classes ``text`` states (non-negated mentions, longest mention wins)."""
        found: set[str] = set()
        for sentence in sentences(str(text)):
            padded = f" {clean_report(sentence).removesuffix(' .')} "
            spans = []  # (start, end, code)
            for code, names in self.names.items():
                for name in names:
                    at = padded.find(f" {name} ")
                    if at < 0 or is_negated(sentence, name):
                        continue
                    while at >= 0:
                        spans.append((at + 1, at + 1 + len(name), code))
                        at = padded.find(f" {name} ", at + 1)
            found |= {c for a, b, c in spans
                      if not any(a2 <= a and b <= b2 and b2 - a2 > b - a and c2 != c for a2, b2, c2 in spans)}
        return found

    def extract(self, text: str) -> str | None:
        """The one class ``text`` states, or None when it states none or several."""
        found = self.stated(text)
        return found.pop() if len(found) == 1 else None


ClassesLike = ClassNames | str | os.PathLike | Mapping[str, Sequence[str]] | None


def _from_mapping(classes: Mapping[str, Sequence[str]], source: str = "mapping") -> ClassNames:
    if not isinstance(classes, Mapping) or not classes:
        raise MstarError(f"{source}: the classes must be a non-empty {{class code: [names]}} mapping")
    names = {}
    for code, syns in classes.items():
        syns = [syns] if isinstance(syns, str) else list(syns)
        cleaned = tuple(dict.fromkeys(c for c in (clean_report(s).removesuffix(" .") for s in syns) if c))
        if not cleaned:
            raise MstarError(f"{source}: class {code!r} has no name to look for")
        names[str(code)] = cleaned
    return ClassNames(names, source)


def _from_file(path_or_name: str) -> ClassNames:
    stat = resolve_prompts(path_or_name).stat()
    return _cached_file(path_or_name, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _cached_file(path_or_name: str, mtime_ns: int, size: int) -> ClassNames:  # re-read when the file changes
    return _from_mapping(read_classnames(path_or_name), source=path_or_name)


def load_classes(classes: ClassesLike = None) -> ClassNames:
    """The classes of the clinical check.

    Args:
        classes: A prompt / knowledge JSON (zero-shot schema), a packaged prompt set name
            (``synthetic_cancer_type``, ``tcga_cohorts``), a ``{class code: [names...]}`` mapping, or None
            (the synthetic cohort's ``synthetic_cancer_type``).

    Raises:
        MstarError: A missing or malformed file, or a class without names.
    """
    return ClassNames.of(classes)


def extract_cancer_type(text: str, classes: ClassesLike = None) -> str | None:
    """The class code a report states (``"BRCA"``, ...), or None when none or several are stated.

    Args:
        text: Report text (raw or cleaned).
        classes: The classes to look for (see :func:`load_classes`; default: the synthetic cohort's).
    """
    return ClassNames.of(classes).extract(text)


def extract_marker(text: str) -> int | None:
    """The TP53 status a report states: 1 mutant, 0 wild type, None when absent or contradictory."""
    cleaned = clean_report(text)
    mutant, wild = bool(_MUTANT.search(cleaned)), bool(_WILD.search(cleaned))
    return None if mutant == wild else int(mutant)


def _truth_of(value: Any, classes: ClassNames) -> tuple[str | None, int | None, bool]:
    """``(class, marker, from_text)`` of one truth."""
    if isinstance(value, str):  # a reference report: read the facts from it
        return classes.extract(value), extract_marker(value), True
    if isinstance(value, Mapping):
        code, marker = value.get("cancer_type"), value.get("marker")
    else:
        code, marker = getattr(value, "cancer_type", None), getattr(value, "marker", None)
    return (None if code is None else str(code)), marker, False


def _right(row: Mapping[str, Any], fact: str) -> float:
    """1.0 when a scored report states its true ``fact`` ("cancer_type" or "marker"), 0.0 when not, NaN when
    the truth is unknown."""
    truth = row[f"true_{fact}"]
    if truth is None:
        return float("nan")
    return float(row[fact] == (int(truth) if fact == "marker" else truth))


@dataclass
class ClinicalScores:
    """Fractions of generated reports that state the true facts.

    Attributes:
        cancer_type_accuracy: Correct class stated / reports with a known class; None when no report has
            a known class or some true class is not among the check's classes (it cannot judge those).
        marker_accuracy: Correct TP53 status stated / reports with a known status; None when no status is
            known or no generated report states one.
        cancer_type_stated: Reports stating exactly one class / reports with a known class (None as for
            ``cancer_type_accuracy``).
        cancer_type_majority: Frequency of the most common true class (the majority-guess baseline).
        n: Reports scored.
        cancer_type_by_class: True class → accuracy on its reports (None for classes the check does not
            know).
        unknown_classes: True classes that the check's classes do not name.
        unjudged: Reference reports (truth given as text) that state none of the classes, or several;
            they are left out.
        classes: Where the check's classes came from.
        notes: The warnings raised (one line each).
        per_report: ``{id: {"cancer_type", "marker", "true_cancer_type", "true_marker"}}``.
    """

    cancer_type_accuracy: float | None
    marker_accuracy: float | None
    cancer_type_stated: float | None
    cancer_type_majority: float | None
    n: int
    cancer_type_by_class: dict[str, float | None] = field(default_factory=dict)
    unknown_classes: list[str] = field(default_factory=list)
    unjudged: int = 0
    classes: str = DEFAULT_CLASSES
    notes: list[str] = field(default_factory=list)
    per_report: dict[Hashable, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The scores without the per-report table."""
        out = asdict(self)
        out.pop("per_report")
        return out

    def ci(self, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
        """Percentile bootstrap intervals (over reports) of the accuracies that could be judged.

        Returns:
            ``{"cancer_type_accuracy" | "marker_accuracy": {"value", "ci_low", "ci_high", "n"}}`` with ``n``
            the reports each rate is over; a rate that is None is left out. ``n_resamples`` 0 gives NaN
            intervals.
        """
        from mstar.eval.bootstrap import bootstrap_ci_weighted, ci_dict, weighted_mean_stats

        rows = list(self.per_report.values())
        per_item = {}  # (n,) 1 right, 0 wrong, NaN not judged
        for key, fact in (("cancer_type_accuracy", "cancer_type"), ("marker_accuracy", "marker")):
            if getattr(self, key) is not None:
                per_item[key] = np.array([_right(p, fact) for p in rows])
        if not per_item:
            return {}
        if n_resamples > 0:
            out = bootstrap_ci_weighted(weighted_mean_stats(per_item), len(rows), n_resamples, seed, alpha)
        else:
            out = {k: ci_dict(float(np.nanmean(v)), np.empty(0), 0, alpha) for k, v in per_item.items()}
        for key, values in per_item.items():
            out[key]["n"] = int(np.isfinite(values).sum())
        return out


def clinical_accuracy(generated: Mapping[Hashable, str], truth: Mapping[Hashable, Any],
                      classes: ClassesLike = None) -> ClinicalScores:
    """Score the facts stated by generated reports.

    Args:
        generated: Report id → generated text.
        truth: Report id → the truth, as ``{"cancer_type": code, "marker": 0|1}``, an object with those
            attributes (``CaseTruth``), or a reference report text (facts extracted by the same rules).
        classes: The classes and their names (see :func:`load_classes`; default: the synthetic cohort's
            ``synthetic_cancer_type``).

    Returns:
        :class:`ClinicalScores`. True classes missing from ``classes`` make ``cancer_type_accuracy`` None
        and raise a one-line ``UserWarning`` naming them; so do reference texts stating no class.
    """
    missing = [k for k in generated if k not in truth]
    if missing:
        raise MstarError(f"no truth for generated report(s) {', '.join(map(str, missing[:5]))}")
    if not generated:
        raise MstarError("no generated reports to score")
    names = ClassNames.of(classes)
    per, unjudged, texts = {}, 0, 0
    for key, text in generated.items():
        true_type, true_marker, from_text = _truth_of(truth[key], names)
        texts += from_text
        unjudged += from_text and true_type is None
        per[key] = {"cancer_type": names.extract(text), "marker": extract_marker(text),
                    "true_cancer_type": true_type, "true_marker": true_marker}
    typed = [p for p in per.values() if p["true_cancer_type"] is not None]
    unknown = sorted({p["true_cancer_type"] for p in typed} - set(names.codes))
    by_class = {}
    for code in sorted({p["true_cancer_type"] for p in typed}, key=str):
        rows = [p for p in typed if p["true_cancer_type"] == code]
        by_class[code] = None if code in unknown else sum(p["cancer_type"] == code for p in rows) / len(rows)
    judged = typed and not unknown
    marked = [p for p in per.values() if p["true_marker"] is not None]
    marker_stated = any(p["marker"] is not None for p in per.values())
    notes = []
    if unknown:
        notes.append(f"clinical check: true class(es) {', '.join(unknown)} are not classes of {names.source} "
                     f"({', '.join(names.codes)}); cancer_type_accuracy cannot be judged (None) — "
                     f"{CLASSES_HINT}")
    if unjudged:
        notes.append(f"clinical check: {unjudged} of {texts} reference reports state none (or several) of "
                     f"the classes of {names.source}; they are left out of cancer_type_accuracy — "
                     f"{CLASSES_HINT}")
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    types = Counter(p["true_cancer_type"] for p in typed)
    return ClinicalScores(
        cancer_type_accuracy=sum(_right(p, "cancer_type") for p in typed) / len(typed) if judged else None,
        marker_accuracy=sum(_right(p, "marker") for p in marked) / len(marked) if marked and marker_stated
        else None,
        cancer_type_stated=sum(p["cancer_type"] is not None for p in typed) / len(typed) if judged else None,
        cancer_type_majority=max(types.values()) / len(typed) if typed else None,
        n=len(per), cancer_type_by_class=by_class, unknown_classes=unknown, unjudged=unjudged,
        classes=names.source, notes=notes, per_report=per)
