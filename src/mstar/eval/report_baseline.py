"""The "most common training report" baseline of report generation (what a model must beat).

The most frequent cleaned training report; when the most frequent ones are tied (e.g. every report is unique,
as in the synthetic cohort) the tie is broken by the medoid: the tied report with the highest corpus BLEU-4
(pycocoevalcap's formula) against the other training reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from mstar.data.report_text import clean_report
from mstar.errors import MstarError
from mstar.eval.text_metrics import bleu_from_statistics


def ngram_counts(text: str) -> tuple[int, list[Counter]]:
    """Word count and the 1- to 4-gram counts of a (cleaned) text."""
    words = text.split()
    return len(words), [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
                        for n in range(1, 5)]


def bleu4_against(cand: tuple[int, list[Counter]], refs: list[tuple[int, list[Counter]]]) -> float:
    """Corpus BLEU-4 of one candidate repeated against each reference (pycocoevalcap's statistics)."""
    stats = np.zeros((len(refs), 10))
    length, counts = cand
    for j, (ref_len, ref_counts) in enumerate(refs):
        stats[j, :2] = length, ref_len
        stats[j, 2:6] = [max(0, length - n) for n in range(4)]
        stats[j, 6:10] = [sum((c & r).values()) for c, r in zip(counts, ref_counts)]
    return float(bleu_from_statistics(stats, np.ones((1, len(refs))))[0, 3])


def most_common_report(train_reports: Sequence[str], max_candidates: int = 500, seed: int = 0) -> str:
    """The "most common training report" baseline (cleaned text).

    The most frequent cleaned training report; when the most frequent ones are tied (e.g. every report is
    unique, as in the synthetic cohort) the tie is broken by the medoid: the tied report with the highest
    corpus BLEU-4 (pycocoevalcap's formula) against the other training reports (up to ``max_candidates``
    candidates and references, sampled with ``seed``), i.e. the strongest single template.
    """
    cleaned = [c for c in (clean_report(r) for r in train_reports) if c]
    if not cleaned:
        raise MstarError("no non-empty training reports for the most-common-report baseline")
    counts = Counter(cleaned)
    top = max(counts.values())
    tied = sorted(r for r, n in counts.items() if n == top)
    if len(tied) == 1:
        return tied[0]
    rng = np.random.default_rng(seed)
    cands = [tied[i] for i in sorted(rng.permutation(len(tied))[:max_candidates])]
    ref_idx = sorted(rng.permutation(len(cleaned))[:max_candidates])
    refs = [(cleaned[i], ngram_counts(cleaned[i])) for i in ref_idx]
    best, best_score = cands[0], -1.0
    for cand in cands:
        others = [counts_ for text, counts_ in refs if text != cand] or [c for _, c in refs]
        score = bleu4_against(ngram_counts(cand), others)
        if score > best_score:
            best, best_score = cand, score
    return best


def baseline_reports(train_reports: Sequence[str], ids: Sequence[Hashable]) -> dict[Hashable, str]:
    """The most common training report for every id in ``ids``."""
    text = most_common_report(train_reports)
    return {i: text for i in ids}
