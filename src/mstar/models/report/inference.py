"""Generating reports for slides with a trained report model (batched beam search)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from mstar.errors import MstarError
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.vocab import Vocabulary


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
