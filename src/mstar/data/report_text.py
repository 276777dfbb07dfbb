"""Report text as HistGen's ``clean_report_pathology`` normalises it (the tokens of report generation and the
clinical check).

Cleaning, as HistGen does for its TCGA reports: newlines become spaces, runs of ``_``/spaces/``..``
collapse, list enumerators (``1. ``) are dropped, the text is lower-cased and split into sentences at
``". "``; in each sentence ``" / \\ '`` and the characters ``. , ? ; * ! % ^ & _ + ( ) : < = > @ [ ] { }``
are deleted (hyphens are kept: in HistGen's regex ``:-\\[`` is a character *range*); sentences are joined
with ``" . "`` and end with ``" ."``. Tokens are the whitespace-separated words of the cleaned text.

Two deliberate differences (docs/report_generation.md): enumerators are dropped only where a list item
can start (text start or after a sentence end) — HistGen's blanket ``replace(' 2. ', '. ')`` also eats
"grade 2." — and a point between two digits is kept ("2.3 cm" stays "2.3", not "23"). Empty sentences are
dropped and an empty report cleans to ``""``.
"""

from __future__ import annotations

import re

_ENUMERATOR = re.compile(r"(?:^|(?<=\. ))\d\. ")
_DROP_CHARS = re.compile(r"(?<!\d)\.|\.(?!\d)|[,?;*!%^&_+():<=>@\[\]{}]")


def _clean_sentence(sentence: str) -> str:
    for ch in ('"', "/", "\\", "'"):
        sentence = sentence.replace(ch, "")
    return " ".join(_DROP_CHARS.sub("", sentence.strip().lower()).split())


def clean_report(text: str) -> str:
    """Normalise one report the way HistGen's tokenizer does (see the module docstring).

    Args:
        text: Raw report text.

    Returns:
        Lower-case sentences joined by ``" . "`` and ending in ``" ."``; ``""`` for an empty report.
    """
    text = re.sub(r"_+", "_", str(text).replace("\n", " "))
    text = re.sub(r"\.{2,}", ".", re.sub(r" {2,}", " ", text)).strip().lower()
    text = _ENUMERATOR.sub("", text)
    sentences = [s for s in (_clean_sentence(part) for part in text.split(". ")) if s]
    return " . ".join(sentences) + " ." if sentences else ""


def tokenize(text: str) -> list[str]:
    """The tokens of the cleaned report."""
    return clean_report(text).split()
