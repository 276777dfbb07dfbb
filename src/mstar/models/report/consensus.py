"""Nearest-neighbour consensus re-ranking of generated reports (Devlin et al. 2015, "Exploring nearest
neighbor approaches for image captioning", applied to slides).

A report generator trained on a few hundred reports learns each class's sentences but not which of a fact's
many phrasings and which boilerplate the reports of similar slides share. The training slides nearest to a
slide (cosine of mean-pooled patch features) and their reports are a second opinion: among those ``k``
reports and the generated one, the report with the highest BLEU-4 against the neighbours' reports (the
consensus) is returned. The generated report wins when it agrees with the neighbours better than any of
them does; otherwise the most typical neighbour report does. ``k`` was chosen on `mstar synth` and reported
on an independent cohort (docs/report_generation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.eval.report_baseline import bleu4_against, ngram_counts
from mstar.run.checkpoint import save_checkpoint


def pooled_vector(bag: torch.Tensor) -> torch.Tensor:
    """The L2-normalised mean ``(D,)`` of a bag of patch features ``(N, D)``."""
    return F.normalize(bag.float().mean(dim=0), dim=0)  # (D,)


@dataclass
class NeighbourBank:
    """The training slides' pooled features ``(M, D)`` and their cleaned reports (``M`` strings)."""

    vectors: torch.Tensor
    reports: list[str]

    @classmethod
    def build(cls, bags: Sequence[torch.Tensor], reports: Sequence[str]) -> NeighbourBank:
        """A bank from the training bags and their (cleaned) reports."""
        if not bags or len(bags) != len(reports):
            raise MstarError(f"a neighbour bank needs one report per bag (got {len(bags)} bags, "
                             f"{len(reports)} reports)")
        return cls(torch.stack([pooled_vector(b) for b in bags]), list(reports))  # (M, D)

    def save(self, path: str | Path) -> None:
        """Write the bank (atomically, like every checkpoint)."""
        save_checkpoint(path, {"vectors": self.vectors, "reports": self.reports})

    @classmethod
    def load(cls, path: str | Path) -> NeighbourBank:
        """Read a bank written by :meth:`save`."""
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return cls(blob["vectors"], list(blob["reports"]))

    def nearest(self, bag: torch.Tensor, k: int) -> list[int]:
        """Indices of the ``k`` training slides nearest to ``bag`` (most similar first)."""
        if bag.shape[-1] != self.vectors.shape[1]:
            raise MstarError(f"patch features of width {bag.shape[-1]} do not match the run's training "
                             f"features ({self.vectors.shape[1]}): use the encoder the run was trained on")
        sims = self.vectors @ pooled_vector(bag)  # (M,)
        return sims.topk(min(k, len(self.reports))).indices.tolist()


def consensus_pick(generated: str, neighbour_reports: Sequence[str]) -> str:
    """The candidate (the generated report or one of the neighbours') with the highest BLEU-4 against the
    neighbours' reports: the generated report against all of them, a neighbour against the others (by
    position, so two neighbours with the same report support each other). Ties keep the generated report;
    with fewer than two neighbours there is no consensus and the generated report is kept."""
    if len(neighbour_reports) < 2:
        return generated
    refs = [ngram_counts(text) for text in neighbour_reports]
    best, best_score = generated, bleu4_against(ngram_counts(generated), refs)
    for j, cand in enumerate(neighbour_reports):
        score = bleu4_against(refs[j], refs[:j] + refs[j + 1:])
        if score > best_score:
            best, best_score = cand, score
    return best


def rerank_reports(generated: Mapping[str, str], bags: Mapping[str, torch.Tensor], bank: NeighbourBank,
                   k: int) -> dict[str, str]:
    """Each slide's consensus report among its generated report and its ``k`` nearest training reports.

    Args:
        generated: ``{slide_id: generated cleaned text}``.
        bags: ``{slide_id: (N, D) patch features}`` for every slide in ``generated``.
        bank: The run's training slides and reports.
        k: Neighbours consulted (0: the generated reports unchanged).
    """
    if k <= 0:
        return dict(generated)
    return {sid: consensus_pick(text, [bank.reports[j] for j in bank.nearest(bags[sid], k)])
            for sid, text in generated.items()}
