"""Stage-1 objectives: symmetric InfoNCE between modality pairs and a batch-hard inter-cancer triplet loss.

Every function works on one (global) batch; under DDP, gather the embeddings first with
:func:`mstar.pretrain.distributed.gather_with_grad` (see that module for the gradient convention).
Embeddings are L2-normalised here, so encoders may return raw projections. Losses come back as named
terms (open_clip style); ``loss`` is what to backpropagate. Formulas: ``docs/pretraining.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LossTerm(NamedTuple):
    """One loss term, how many items (pairs or anchors) it used, and whether it could be computed.

    When ``ok`` is False the loss is an exact 0 that still depends on the inputs (so DDP sees every
    parameter used).
    """

    loss: Tensor
    n: int
    ok: bool


class LogitScale(nn.Module):
    """CLIP's learnable inverse temperature: ``exp(log_scale)``, initialised to ``1/0.07``, capped at 100."""

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0,
                 learnable: bool = True) -> None:
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learnable)

    def forward(self) -> Tensor:
        """The multiplier of the cosine similarities, a 0-d tensor."""
        return self.log_scale.exp().clamp(max=self.max_scale)


def _zero(*tensors: Tensor | float) -> Tensor:
    """An exact 0 that still depends on the tensors among ``tensors`` (so DDP sees every parameter used)."""
    return sum(t.sum() for t in tensors if isinstance(t, Tensor)) * 0.0


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, valid_a: Tensor | None = None,
              valid_b: Tensor | None = None) -> LossTerm:
    """Symmetric InfoNCE over the rows where both modalities exist.

    Args:
        a: ``(B, D)`` embeddings of modality A (normalised here).
        b: ``(B, D)`` embeddings of modality B, row i paired with ``a[i]``.
        logit_scale: Multiplier of the cosine similarities (``1/τ``).
        valid_a: ``(B,)`` bool, rows where A exists (None: all).
        valid_b: ``(B,)`` bool, rows where B exists (None: all).

    Returns:
        ``½ (CE(s·A·Bᵀ, I) + CE(s·B·Aᵀ, I))`` over the ``n`` valid pairs; rows missing either modality take
        no part in the logits or the targets. With fewer than 2 pairs: an exact 0 and ``ok`` False.
    """
    keep = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    if valid_a is not None:
        keep = keep & valid_a.bool()
    if valid_b is not None:
        keep = keep & valid_b.bool()
    n = int(keep.sum())
    if n < 2:
        return LossTerm(_zero(a[keep], b[keep], logit_scale), n, False)
    za = F.normalize(a[keep], dim=-1)  # (n, D)
    zb = F.normalize(b[keep], dim=-1)  # (n, D)
    logits = logit_scale * za @ zb.T  # (n, n)
    target = torch.arange(n, device=a.device)
    return LossTerm(0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)), n, True)


def multimodal_contrastive_loss(z_slide: Tensor, z_report: Tensor, z_gene: Tensor, has_report: Tensor,
                                has_gene: Tensor, logit_scale: Tensor | float,
                                has_slide: Tensor | None = None) -> dict[str, Tensor]:
    """Sum of the three pairwise InfoNCE terms (slide–report, slide–gene, report–gene).

    Args:
        z_slide: ``(B, D)``; rows without a slide may hold anything.
        z_report: ``(B, D)``; rows without a report may hold anything (they are excluded).
        z_gene: ``(B, D)``; rows without RNA may hold anything.
        has_report: ``(B,)`` bool.
        has_gene: ``(B,)`` bool.
        logit_scale: ``1/τ``.
        has_slide: ``(B,)`` bool (None: every sample has a slide; cohorts without slide features pass False).

    Returns:
        ``slide_report``, ``slide_gene``, ``report_gene``, ``loss`` (their sum; a term with < 2 pairs is 0)
        and the pair counts ``n_slide_report``, ``n_slide_gene``, ``n_report_gene`` (0-d long tensors).
    """
    terms = {
        "slide_report": clip_loss(z_slide, z_report, logit_scale, has_slide, has_report),
        "slide_gene": clip_loss(z_slide, z_gene, logit_scale, has_slide, has_gene),
        "report_gene": clip_loss(z_report, z_gene, logit_scale, has_report, has_gene),
    }
    out = {name: term.loss for name, term in terms.items()}
    out["loss"] = sum(out.values())
    out.update({f"n_{name}": torch.tensor(term.n) for name, term in terms.items()})
    return out


def _sq_dists(x: Tensor) -> Tensor:
    """``(B, B)`` squared Euclidean distances of the rows of ``x`` ``(B, D)``."""
    sq = (x * x).sum(-1)  # (B,)
    return (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)  # (B, B)


def triplet_from_distances(dist: Tensor, labels: Tensor, margin: float = 0.3,
                           pair_valid: Tensor | None = None) -> LossTerm:
    """Batch-hard triplet loss from a distance matrix.

    Args:
        dist: ``(B, B)`` distances.
        labels: ``(B,)`` integer class labels (cancer type).
        margin: The margin ε.
        pair_valid: ``(B, B)`` bool, pairs whose distance is defined (None: all).

    Returns:
        Mean over anchors of ``max(0, max_{p∈P(a)} d(a,p) − min_{q∈N(a)} d(a,q) + ε)`` with ``P(a)`` the
        other same-label samples and ``N(a)`` the other-label samples; anchors with an empty ``P(a)`` or
        ``N(a)`` are left out (``n`` counts the rest).
    """
    labels = labels.view(-1)
    b = labels.shape[0]
    valid = torch.ones(b, b, dtype=torch.bool, device=dist.device) if pair_valid is None \
        else pair_valid.bool()
    same = labels[:, None] == labels[None, :]  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=dist.device)
    pos = same & ~eye & valid
    neg = ~same & valid
    hardest_pos = dist.masked_fill(~pos, float("-inf")).amax(dim=1)  # (B,)
    hardest_neg = dist.masked_fill(~neg, float("inf")).amin(dim=1)  # (B,)
    anchors = pos.any(dim=1) & neg.any(dim=1)
    n = int(anchors.sum())
    if n == 0:
        return LossTerm(_zero(dist), 0, False)
    per_anchor = F.relu(hardest_pos[anchors] - hardest_neg[anchors] + margin)  # (n,)
    return LossTerm(per_anchor.mean(), n, True)


def triplet_batch_hard(emb: Tensor, labels: Tensor, margin: float = 0.3) -> LossTerm:
    """Batch-hard triplet loss with L2 distances between the rows of ``emb`` ``(B, D)`` (used as given)."""
    return triplet_from_distances(_sq_dists(emb).clamp_min(1e-12).sqrt(), labels, margin)


def multimodal_triplet(parts: list[Tensor], present: Tensor, labels: Tensor, margin: float = 0.3) -> LossTerm:
    """Batch-hard triplet on the concatenation of L2-normalised modality embeddings, missing ones skipped.

    The distance of two samples uses only the modalities both have, rescaled to the full concatenation:
    ``d(i,j)² = (M / |S_ij|) Σ_{m∈S_ij} ‖ẑ_i^m − ẑ_j^m‖²`` with ``S_ij`` the shared modalities. With all
    modalities present this is exactly the L2 distance of the concatenated ``[ẑ^P, ẑ^R, ẑ^G]``.

    Args:
        parts: ``M`` tensors ``(B, D_m)``, one per modality (slide first).
        present: ``(B, M)`` bool, which modalities each sample has.
        labels: ``(B,)`` cancer-type labels.
        margin: The margin ε (0.3 upstream).
    """
    present = present.bool()
    m = len(parts)
    sq = torch.zeros(labels.shape[0], labels.shape[0], device=parts[0].device, dtype=parts[0].dtype)
    shared = (present.float() @ present.float().T)  # (B, B) number of shared modalities
    for k, part in enumerate(parts):
        both = present[:, k, None] & present[None, :, k]  # (B, B)
        unit = F.normalize(torch.where(present[:, k, None], part, 0.0), dim=-1)  # (B, D_m); NaN-safe
        sq = sq + torch.where(both, _sq_dists(unit), torch.zeros_like(sq))
    pair_valid = shared > 0
    dist = (sq * m / shared.clamp_min(1.0)).clamp_min(1e-12).sqrt()  # (B, B)
    return triplet_from_distances(dist, labels, margin, pair_valid)


def stage1_loss(z_slide: Tensor, z_report: Tensor, z_gene: Tensor, has_report: Tensor, has_gene: Tensor,
                labels: Tensor, logit_scale: Tensor | float, margin: float = 0.3,
                triplet_weight: float = 1.0, has_slide: Tensor | None = None) -> dict[str, Tensor]:
    """``L_S1 = L_PR + L_PG + L_RG + w · L_tri`` with every named term (see the two functions above); a
    sample without a slide (``has_slide`` False) takes part through its report and RNA only.

    Returns:
        The terms of :func:`multimodal_contrastive_loss` plus ``contrastive`` (their sum), ``triplet``,
        ``n_triplet`` and ``loss`` (the total).
    """
    out = multimodal_contrastive_loss(z_slide, z_report, z_gene, has_report, has_gene, logit_scale, has_slide)
    slide = torch.ones_like(has_report, dtype=torch.bool) if has_slide is None else has_slide.bool()
    present = torch.stack([slide, has_report.bool(), has_gene.bool()], dim=1)  # (B, 3)
    tri = multimodal_triplet([z_slide, z_report, z_gene], present, labels, margin)
    out["contrastive"] = out["loss"]
    out["triplet"] = tri.loss
    out["n_triplet"] = torch.tensor(tri.n)
    out["loss"] = out["contrastive"] + triplet_weight * tri.loss
    return out
