"""Multimodal (WSI + genomics) survival models with one interface, loading upstream mSTAR weights unchanged.

Every model: ``forward(x_path (B, N, D), mask (B, N) bool | None, omics) -> FusionOutput`` where ``omics``
is one ``(B, size_i)`` tensor per signature group (MCAT, MOTCat, CMTA) or the full omic vector / the groups
concatenated (Porpoise, SNN, late fusion). Registry names: ``mcat``, ``motcat``, ``porpoise``, ``cmta``,
``snn``, ``abmil_surv``, ``late_fusion`` (factories take ``path_dim``, ``omic_sizes``, ``n_bins``). The
training loss is :func:`fusion_survival_loss` (NLLSurv, chunk-averaged for MOTCat, + ``aux_loss``).
"""

from mstar.models.fusion.baselines import SNN, ABMILSurvival, LateFusion
from mstar.models.fusion.cmta import CMTA
from mstar.models.fusion.common import (
    FusionOutput,
    MultiheadAttention,
    TransformerEncoder,
    fusion_survival_loss,
)
from mstar.models.fusion.mcat import MCAT
from mstar.models.fusion.motcat import MOTCat, OTCoAttention, split_chunks
from mstar.models.fusion.porpoise import LRBilinearFusion, Porpoise
from mstar.models.fusion.upstream import fusion_from_upstream, upstream_kind

__all__ = [
    "CMTA",
    "MCAT",
    "SNN",
    "ABMILSurvival",
    "FusionOutput",
    "LRBilinearFusion",
    "LateFusion",
    "MOTCat",
    "MultiheadAttention",
    "OTCoAttention",
    "Porpoise",
    "TransformerEncoder",
    "fusion_from_upstream",
    "fusion_survival_loss",
    "split_chunks",
    "upstream_kind",
]
