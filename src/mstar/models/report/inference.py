"""Generating reports for slides, and the "most common training report" baseline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mstar.errors import MstarError
from mstar.eval.text_metrics import bleu_from_statistics
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.vocab import Vocabulary, clean_report


@dataclass
class ReportItem:
    """One slide: its patch features ``(N, D)`` and (for training/evaluation) its reference report."""

    slide_id: str
    features: torch.Tensor
    report: str = ""


def pad_bags(bags: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(N_i, D)`` bags into ``(B, N_max, D)`` features (zero padding) and a ``(B, N_max)`` mask."""
    n_max, dim = max(b.shape[0] for b in bags), bags[0].shape[1]
    feats = bags[0].new_zeros(len(bags), n_max, dim)  # (B, N, D)
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool, device=bags[0].device)  # (B, N)
    for i, bag in enumerate(bags):
        feats[i, : bag.shape[0]] = bag
        mask[i, : bag.shape[0]] = True
    return feats, mask


def generate_reports(model: ReportGenerator, vocab: Vocabulary, items: Sequence[ReportItem],
                     beam_size: int = 3, batch_size: int = 8, max_len: int | None = None,
                     block_trigrams: bool = True, length_penalty: float = 0.0) -> dict[str, str]:
    """Generated (cleaned, lower-case) report per slide id.

    Args:
        model: The report model.
        vocab: Its vocabulary.
        items: Slides to describe (``report`` is ignored).
        beam_size: Beam width (1 = greedy).
        batch_size: Slides decoded together.
        max_len: Most tokens per report (default: the model's).
        block_trigrams: Never repeat a trigram.
        length_penalty: Wu et al.'s alpha for ranking finished reports (0: none, as HistGen's run).

    Returns:
        ``{slide_id: text}``.
    """
    device = next(model.parameters()).device
    out: dict[str, str] = {}
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        feats, mask = pad_bags([it.features.to(device=device, dtype=torch.float32) for it in chunk])
        seqs = model.generate(feats, mask, beam_size=beam_size, max_len=max_len,
                              block_trigrams=block_trigrams, length_penalty=length_penalty)
        out.update({it.slide_id: vocab.decode(seq) for it, seq in zip(chunk, seqs)})
    return out


def generate_for_slide(model: ReportGenerator, vocab: Vocabulary, features: Mapping[str, torch.Tensor],
                       slide_id: str, beam_size: int = 3, length_penalty: float = 0.0) -> str:
    """The report of one slide; an unknown ``slide_id`` is a one-line :class:`MstarError`."""
    if slide_id not in features:
        known = sorted(features)
        hint = f" (known: {', '.join(known[:3])}{', ...' if len(known) > 3 else ''})" if known else ""
        raise MstarError(f"unknown slide id '{slide_id}': no features for it among {len(known)} slides{hint}")
    item = ReportItem(slide_id, torch.as_tensor(features[slide_id]))
    return generate_reports(model, vocab, [item], beam_size=beam_size, batch_size=1,
                            length_penalty=length_penalty)[slide_id]


def _ngram_counts(text: str) -> tuple[int, list[Counter]]:
    words = text.split()
    return len(words), [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, 5)]


def _bleu4_against(cand: tuple[int, list[Counter]], refs: list[tuple[int, list[Counter]]]) -> float:
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
    refs = [(cleaned[i], _ngram_counts(cleaned[i])) for i in ref_idx]
    best, best_score = cands[0], -1.0
    for cand in cands:
        others = [counts_ for text, counts_ in refs if text != cand] or [c for _, c in refs]
        score = _bleu4_against(_ngram_counts(cand), others)
        if score > best_score:
            best, best_score = cand, score
    return best


def baseline_reports(train_reports: Sequence[str], ids: Sequence[Hashable]) -> dict[Hashable, str]:
    """The most common training report for every id in ``ids``."""
    text = most_common_report(train_reports)
    return {i: text for i in ids}
