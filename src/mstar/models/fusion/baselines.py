"""Baselines in the multimodal interface: SNN (genomics only), ABMIL (WSI only) and a late-fusion model.

All take ``forward(x_path, mask, omics) -> FusionOutput`` like MCAT/MOTCat/Porpoise/CMTA, ignoring the
modality they do not use, so a training loop can swap any of them in.

- :class:`SNN` (Klambauer 2017; the genomic baseline of MCAT/PORPOISE): two SNN blocks
  (Linear-ELU-AlphaDropout, 256 wide) over the full omic vector (groups concatenated) and a Linear to the time
  bins; LeCun-normal init.
- :class:`ABMILSurvival`: the :class:`~mstar.models.abmil.ABMIL` aggregator + :class:`SurvivalHead`; keys
  ``aggregator.*`` + ``head.fc.*`` equal :class:`~mstar.models.mil.MILModel`'s, so an upstream AttMIL survival
  checkpoint loads via :func:`mstar.models.upstream.upstream_to_mil`.
- :class:`LateFusion`: ABMIL slide embedding (512) and SNN omic embedding (256) concatenated, then
  ``Linear(768, 256) + ReLU + Dropout`` and a Linear to the time bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.abmil import ABMIL
from mstar.models.fusion.common import FusionOutput, OmicsInput, concat_omics, linear_relu_dropout, snn_stack
from mstar.models.heads import SurvivalHead, survival_from_logits
from mstar.models.registry import register_model


def _lecun_normal_(module: nn.Module) -> None:
    """SNN initialisation (upstream ``init_max_weights``): Linear weights N(0, 1/fan_in), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight.shape[1]))
            nn.init.zeros_(m.bias)


def _omic_dim(omic_sizes: Sequence[int] | None, omic_dim: int | None, name: str) -> int:
    dim = omic_dim if omic_dim is not None else (sum(omic_sizes) if omic_sizes else 0)
    if dim < 1:
        raise MstarError(f"{name} needs omic_sizes (genes per group, concatenated) or omic_dim (the full "
                         "vector width)")
    return dim


class SNN(nn.Module):
    """Genomics-only survival: self-normalising MLP over the omic vector.

    Args:
        omic_dim: Width of the omic vector (the groups concatenated).
        n_bins: Discrete time bins.
        hidden: SNN widths (upstream "small": 256, 256).
        dropout: AlphaDropout rate.
    """

    def __init__(self, omic_dim: int, n_bins: int = 4, hidden: Sequence[int] = (256, 256),
                 dropout: float = 0.25) -> None:
        super().__init__()
        self.omic_dim, self.n_bins = omic_dim, n_bins
        self.fc_omic = snn_stack(omic_dim, hidden, dropout)
        self.classifier = nn.Linear(hidden[-1], n_bins)
        _lecun_normal_(self)

    def forward(self, x_path: Tensor | None = None, mask: Tensor | None = None,
                omics: OmicsInput = ()) -> FusionOutput:
        """``omics``: ``(B, omic_dim)`` or groups concatenated to it; ``x_path``/``mask`` are ignored."""
        batch = None if x_path is None else x_path.shape[0]
        x = concat_omics(omics, self.omic_dim, batch, "SNN").to(self.classifier.weight.dtype)
        z = self.fc_omic(x)  # (B, hidden)
        logits = self.classifier(z)  # (B, T)
        return FusionOutput(logits=logits, survival=survival_from_logits(logits), embeddings={"omic": z})


class ABMILSurvival(nn.Module):
    """WSI-only survival: :class:`ABMIL` + :class:`SurvivalHead` (upstream AttMIL survival model).

    Args:
        path_dim: Patch feature width.
        n_bins: Discrete time bins.
        **kwargs: Further :class:`ABMIL` arguments (``gated``, ``dropout``, ...).
    """

    def __init__(self, path_dim: int = 1024, n_bins: int = 4, **kwargs: Any) -> None:
        super().__init__()
        self.aggregator = ABMIL(in_dim=path_dim, **kwargs)
        self.head = SurvivalHead(self.aggregator.embed_dim, n_bins)

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = ()) -> FusionOutput:
        """``x_path`` ``(B, N, D)``, ``mask`` ``(B, N)``; ``omics`` is ignored; ``path``: softmax weights."""
        slide = self.aggregator(x_path, mask)
        surv = self.head(slide.embedding)
        return FusionOutput(logits=surv.logits, survival=surv, attention={"path": slide.attention},
                            embeddings={"path": slide.embedding})


class LateFusion(nn.Module):
    """ABMIL slide embedding + SNN omic embedding, fused late.

    ``fusion="concat"``: the two embeddings are concatenated, then an MLP maps them to the time bins.
    ``fusion="sum"``: each embedding gets its own linear head and the two logit vectors are added, i.e. the
    log-odds of the hazard in every bin is a sum of a slide term and an omic term (the additive model a
    Cox-style analysis would fit; few parameters, so it suits small cohorts).

    Args:
        path_dim: Patch feature width.
        omic_dim: Omic vector width (groups concatenated).
        n_bins: Discrete time bins.
        hidden: Width of the fusion layer (``concat``).
        dropout: Dropout of the fusion layer (``concat``).
        fusion: ``concat`` or ``sum``.
        path_width: Width of the ABMIL instance embedding (upstream 512).
        attn_dim: ABMIL attention width (upstream 128).
        omic_width: Width of the two SNN layers (256).
    """

    def __init__(self, path_dim: int = 1024, omic_dim: int = 0, n_bins: int = 4, hidden: int = 256,
                 dropout: float = 0.25, fusion: str = "concat", path_width: int = 512, attn_dim: int = 128,
                 omic_width: int = 256) -> None:
        super().__init__()
        if fusion not in ("concat", "sum"):
            raise MstarError(f"late fusion: fusion must be 'concat' or 'sum', got {fusion!r}")
        self.omic_dim, self.fusion = omic_dim, fusion
        self.path_net = ABMIL(in_dim=path_dim, dim=path_width, attn_dim=attn_dim)
        self.omic_net = snn_stack(omic_dim, (omic_width, omic_width))
        _lecun_normal_(self.omic_net)
        if fusion == "concat":
            self.mm = linear_relu_dropout(path_width + omic_width, hidden, dropout)
            self.classifier = nn.Linear(hidden, n_bins)
        else:
            self.path_head = nn.Linear(path_width, n_bins)
            self.omic_head = nn.Linear(omic_width, n_bins)

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = ()) -> FusionOutput:
        """``x_path`` ``(B, N, D)``, ``mask`` ``(B, N)``, ``omics`` ``(B, omic_dim)`` or groups to join."""
        slide = self.path_net(x_path, mask)
        z_omic = self.omic_net(concat_omics(omics, self.omic_dim, x_path.shape[0], "LateFusion").to(
            slide.embedding.dtype))  # (B, omic_width)
        if self.fusion == "concat":
            logits = self.classifier(self.mm(torch.cat([slide.embedding, z_omic], dim=1)))  # (B, T)
        else:
            logits = self.path_head(slide.embedding) + self.omic_head(z_omic)  # (B, T)
        return FusionOutput(logits=logits, survival=survival_from_logits(logits),
                            attention={"path": slide.attention},
                            embeddings={"path": slide.embedding, "omic": z_omic})


@register_model("snn", "SNN (Klambauer 2017): genomics-only survival, self-normalising MLP over the omic "
                       "vector")
def snn(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
        omic_dim: int | None = None, **kwargs: Any) -> SNN:
    """:class:`SNN` over ``omic_dim`` or ``sum(omic_sizes)`` genes (``path_dim`` is accepted and unused)."""
    return SNN(_omic_dim(omic_sizes, omic_dim, "snn"), n_bins=n_bins, **kwargs)


@register_model("abmil_surv", "ABMIL survival (WSI only) in the multimodal interface; upstream AttMIL layout")
def abmil_surv(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
               **kwargs: Any) -> ABMILSurvival:
    """:class:`ABMILSurvival` (``omic_sizes`` is accepted and unused)."""
    return ABMILSurvival(path_dim=path_dim, n_bins=n_bins, **kwargs)


@register_model("late_fusion", "Late fusion: ABMIL slide embedding + SNN omic embedding, concatenated -> "
                               "MLP -> survival")
def late_fusion(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
                omic_dim: int | None = None, **kwargs: Any) -> LateFusion:
    """:class:`LateFusion` over ``omic_dim`` or ``sum(omic_sizes)`` genes."""
    dim = _omic_dim(omic_sizes, omic_dim, "late_fusion")
    return LateFusion(path_dim=path_dim, omic_dim=dim, n_bins=n_bins, **kwargs)
