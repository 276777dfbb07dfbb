"""Nearest-neighbour consensus re-ranking of generated reports (Devlin et al. 2015, "Exploring nearest
neighbor approaches for image captioning", applied to slides).

A report generator trained on a few hundred reports learns each class's sentences but not which of a fact's
many phrasings and which boilerplate the reports of similar slides share. The ``k`` training reports nearest
to a slide are a second opinion: among those reports and the generated one, the report with the highest
BLEU-4 against the neighbours' reports (the consensus) is returned. The generated report wins when it agrees
with the neighbours better than any of them does; otherwise the most typical neighbour report does.

Two neighbour spaces (docs/report_generation.md):

- ``pooled``: the training slides nearest by the cosine of mean-pooled patch features (no other input);
- ``stage1``: the training *reports* nearest to the slide's stage-1 slide embedding in the stage-1 report
  space (cross-modal retrieval with the pretrained model; vectors from an ``mstar embed`` file). Chosen on
  `mstar synth` over pooled features and over stage-1 slide-to-slide neighbours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from mstar.data.embeddings import CohortEmbeddings
from mstar.errors import MstarError
from mstar.eval.report_baseline import bleu4_against, ngram_counts
from mstar.run.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

SPACES = ("pooled", "stage1")


def pooled_vector(bag: torch.Tensor) -> torch.Tensor:
    """The L2-normalised mean ``(D,)`` of a bag of patch features ``(N, D)``."""
    return F.normalize(bag.float().mean(dim=0), dim=0)  # (D,)


@dataclass
class NeighbourBank:
    """The training reports (``M`` cleaned strings) and the vectors ``(M, D)`` they are found by: the
    training slides' pooled features (``space="pooled"``) or the reports' stage-1 embeddings
    (``space="stage1"``, ``source`` = the ``mstar embed`` file they came from, ``model`` = what identifies the
    stage-1 model that file was embedded with: its content digest)."""

    vectors: torch.Tensor
    reports: list[str]
    space: str = "pooled"
    source: str = ""
    model: str = ""

    @classmethod
    def build(cls, bags: Sequence[torch.Tensor], reports: Sequence[str]) -> NeighbourBank:
        """A pooled-feature bank from the training bags and their (cleaned) reports."""
        if not bags or len(bags) != len(reports):
            raise MstarError(f"a neighbour bank needs one report per bag (got {len(bags)} bags, "
                             f"{len(reports)} reports)")
        return cls(torch.stack([pooled_vector(b) for b in bags]), list(reports))  # (M, D)

    @classmethod
    def from_embeddings(cls, embeddings: CohortEmbeddings, slide_ids: Sequence[str],
                        reports: Sequence[str]) -> NeighbourBank:
        """A stage-1 bank: the distinct (cleaned) ``reports`` of the training ``slide_ids``, found by their
        report embeddings in ``embeddings``. A report shared by several slides (one report per case) is one
        entry: the same text has the same embedding, and copies would outvote every other neighbour."""
        if not slide_ids or len(slide_ids) != len(reports):
            raise MstarError(f"a neighbour bank needs one report per slide (got {len(slide_ids)} slides, "
                             f"{len(reports)} reports)")
        vectors = embeddings.lookup("report", list(slide_ids), "training slides")  # (M, E)
        first, seen = [], set()
        for i, text in enumerate(reports):
            if text not in seen:
                seen.add(text)
                first.append(i)
        return cls(vectors[first], [reports[i] for i in first], "stage1", str(embeddings.path.resolve()),
                   embeddings.model_id)

    def save(self, path: str | Path) -> None:
        """Write the bank (atomically, like every checkpoint)."""
        save_checkpoint(path, {"vectors": self.vectors, "reports": self.reports, "space": self.space,
                               "source": self.source, "model": self.model})

    @classmethod
    def load(cls, path: str | Path) -> NeighbourBank:
        """Read a bank written by :meth:`save` (banks of earlier versions are pooled-feature banks)."""
        blob = load_checkpoint(path, what="neighbour bank", hint="; train the report run again (--overwrite)")
        space = blob.get("space", "pooled")
        if space not in SPACES:
            raise MstarError(f"{path}: unknown neighbour space {space!r} (known: {', '.join(SPACES)})")
        return cls(blob["vectors"], list(blob["reports"]), space, blob.get("source", ""),
                   blob.get("model", ""))

    def queries(self, bags: Mapping[str, torch.Tensor | None],
                embeddings: CohortEmbeddings | None = None) -> dict[str, torch.Tensor]:
        """``{slide_id: (D,) query vector}`` for the slides of ``bags``: their pooled features, or their
        stage-1 slide embeddings from ``embeddings`` (required for a stage-1 bank, which ignores the bags'
        contents)."""
        if self.space == "pooled":
            return {sid: pooled_vector(bag) for sid, bag in bags.items()}
        if embeddings is None:
            raise MstarError(f"this run finds neighbours by stage-1 embeddings ({self.source}): pass the "
                             "`mstar embed` file of the slides (--embeddings)")
        legacy = self.model.startswith("large:") and not embeddings.model_id.startswith("large:")
        if legacy:  # a run from before models were keyed by their whole content: not comparable
            log.warning("%s: this run's neighbours were found by a stage-1 model identified by file name and "
                        "time only; make sure %s embedded these slides", self.source, embeddings.checkpoint)
        elif self.model and embeddings.model_id != self.model:
            raise MstarError(f"{embeddings.path}: embedded with another stage-1 model "
                             f"({embeddings.checkpoint}) than this run's neighbours (in {self.source}): "
                             "embed the slides with that model")
        ids = list(bags)
        return dict(zip(ids, embeddings.lookup("slide", ids, "slides to report on"))) if ids else {}

    def nearest(self, query: torch.Tensor, k: int) -> list[int]:
        """Indices of the ``k`` bank reports nearest to the ``(D,)`` unit ``query`` (most similar first)."""
        if query.shape[-1] != self.vectors.shape[1]:
            what = ("patch features", "the encoder the run was trained on") if self.space == "pooled" else (
                "stage-1 embeddings", "an `mstar embed` file of the stage-1 model the run used")
            raise MstarError(f"{what[0]} of width {query.shape[-1]} do not match the run's neighbour bank "
                             f"({self.vectors.shape[1]}): use {what[1]}")
        sims = self.vectors @ query.float()  # (M,)
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


def rerank_reports(generated: Mapping[str, str], queries: Mapping[str, torch.Tensor], bank: NeighbourBank,
                   k: int) -> dict[str, str]:
    """Each slide's consensus report among its generated report and its ``k`` nearest training reports.

    Args:
        generated: ``{slide_id: generated cleaned text}``.
        queries: ``{slide_id: (D,) query vector}`` for every slide in ``generated``
            (:meth:`NeighbourBank.queries`).
        bank: The run's training reports and the vectors they are found by.
        k: Neighbours consulted (0: the generated reports unchanged).
    """
    if k <= 0:
        return dict(generated)
    return {sid: consensus_pick(text, [bank.reports[j] for j in bank.nearest(queries[sid], k)])
            for sid, text in generated.items()}
