"""CMTA (Zhou & Chen, ICCV 2023): cross-modal translation and alignment, as upstream mSTAR's ``CMTA``.

For one case (``G`` signature groups)::

    p      = pathomics_fc(x)                           (N, 256)   2 x (Linear-ReLU-Dropout)
    g      = [genomics_fc[i](omic_i)]                   (G, 256)   SNN 1024 -> 256 per group
    P, tp  = pathomics_encoder(p)                       TransMIL trunk at 256 (square padding, PPEG): CLS,
                                                        L = ceil(sqrt N)^2 tokens
    G, tg  = genomics_encoder(g)                        same without padding/PPEG: CLS, G tokens
    P_hat  = pathomics_decoder(P_in_G_Att(tp -> tg))    path tokens translated through the genomic tokens
    G_hat  = genomics_decoder(G_in_P_Att(tg -> tp))     genomic tokens translated through the path tokens
    logits = classifier(mm([(P + P_hat) / 2, (G + G_hat) / 2]))

Training adds the alignment terms ``L1(P_hat, P.detach()) + L1(G_hat, G.detach())`` (weight 1 each, mean
reduction, as the upstream engine) — returned as ``aux_loss``. The encoders/decoders are
:class:`~mstar.models.transmil.TransMIL` (``in_dim=dim=256``, no input projection; ``ppeg=False`` for the
genomic ones), whose keys equal upstream's ``Transformer_P`` / ``Transformer_G``; the translations are the
shared :class:`~mstar.models.fusion.common.MultiheadAttention` (single head).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mstar.models.blocks import all_real, xavier_init_
from mstar.models.dropout import FastDropout
from mstar.models.fusion.common import (
    FusionOutput,
    MultiheadAttention,
    OmicsInput,
    check_omics,
    check_path,
    concat_mlp,
    encode_signatures,
    require_sizes,
    signature_networks,
)
from mstar.models.heads import survival_from_logits
from mstar.models.registry import register_model
from mstar.models.transmil import TransMIL


class CMTA(nn.Module):
    """CMTA with concat fusion, "small" sizes (upstream ``CMTA(fusion='concat', model_size='small')``).

    Args:
        path_dim: Patch feature width (1024).
        omic_sizes: Genes per signature group.
        n_bins: Discrete time bins (4).
        dim: Token width (256).

    Batching: without padding the batch runs at once (the Nystrom attention is applied bag by bag, so each bag
    gets its batch-of-one output); with padding each bag runs on its real patches only (a loop), so its square
    padding and PPEG grid are its own.

    Outputs: ``embeddings`` ``P``, ``P_hat``, ``G``, ``G_hat`` ``(B, dim)`` (the four CLS tokens upstream
    returns), ``aux_loss`` the L1 alignment terms; no attention scores (upstream discards them).
    """

    def __init__(self, path_dim: int = 1024, omic_sizes: Sequence[int] = (), n_bins: int = 4,
                 dim: int = 256) -> None:
        super().__init__()
        self.path_dim, self.omic_sizes, self.n_bins = path_dim, list(omic_sizes), n_bins
        self.pathomics_fc = nn.Sequential(nn.Linear(path_dim, dim), nn.ReLU(), FastDropout(0.25),
                                          nn.Linear(dim, dim), nn.ReLU(), FastDropout(0.25))
        self.genomics_fc = signature_networks(omic_sizes, (1024, dim))
        self.pathomics_encoder = TransMIL(in_dim=dim, dim=dim, input_proj=False)
        self.pathomics_decoder = TransMIL(in_dim=dim, dim=dim, input_proj=False)
        self.P_in_G_Att = MultiheadAttention(dim, heads=1)
        self.G_in_P_Att = MultiheadAttention(dim, heads=1)
        self.genomics_encoder = TransMIL(in_dim=dim, dim=dim, input_proj=False, ppeg=False)
        self.genomics_decoder = TransMIL(in_dim=dim, dim=dim, input_proj=False, ppeg=False)
        self.mm = concat_mlp(dim)
        self.classifier = nn.Linear(dim, n_bins)
        xavier_init_(self)  # upstream initialize_weights

    def _run(self, x_path: Tensor, groups: Sequence[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Equal-length bags ``(B, n, D)`` -> ``(logits (B, T), {P, P_hat, G, G_hat})``."""
        g_tokens = encode_signatures(self.genomics_fc, groups)  # (B, G, dim)
        p_tokens = self.pathomics_fc(x_path)  # (B, n, dim)
        cls_p, tp = self.pathomics_encoder.encode(p_tokens)  # (B, dim), (B, L, dim)
        cls_g, tg = self.genomics_encoder.encode(g_tokens)  # (B, dim), (B, G, dim)
        p_in_g, _ = self.P_in_G_Att(tp, tg)  # (B, L, dim)
        g_in_p, _ = self.G_in_P_Att(tg, tp)  # (B, G, dim)
        cls_p_hat, _ = self.pathomics_decoder.encode(p_in_g)  # (B, dim)
        cls_g_hat, _ = self.genomics_decoder.encode(g_in_p)  # (B, dim)
        fused = self.mm(torch.cat([(cls_p + cls_p_hat) / 2, (cls_g + cls_g_hat) / 2], dim=1))  # (B, dim)
        return self.classifier(fused), {"P": cls_p, "P_hat": cls_p_hat, "G": cls_g, "G_hat": cls_g_hat}

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = ()) -> FusionOutput:
        """Predict survival for a batch of cases.

        Args:
            x_path: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True = real patch; ``None`` = all real.
            omics: One ``(B, size_i)`` tensor per signature group.
        """
        x_path = check_path(x_path, mask, self.path_dim).to(self.classifier.weight.dtype)
        groups = [g.to(x_path.dtype) for g in check_omics(omics, self.omic_sizes, x_path.shape[0], "CMTA")]
        if all_real(mask):
            logits, emb = self._run(x_path, groups)
        else:
            parts = [self._run(x_path[b : b + 1, mask[b]], [g[b : b + 1] for g in groups])
                     for b in range(x_path.shape[0])]
            logits = torch.cat([p[0] for p in parts])
            emb = {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}
        aux = F.l1_loss(emb["P_hat"], emb["P"].detach()) + F.l1_loss(emb["G_hat"], emb["G"].detach())
        return FusionOutput(logits=logits, survival=survival_from_logits(logits), aux_loss=aux,
                            embeddings=emb)


@register_model("cmta", "CMTA (Zhou 2023): pathology/genomic Nystrom encoders-decoders with cross-modal "
                        "translation; NLLSurv + L1 alignment (aux_loss); the slowest model by far (four "
                        "transformers, bag by bag): on a CPU set a small width, --set model_args='{dim: 32}'")
def cmta(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
         **kwargs: Any) -> CMTA:
    """:class:`CMTA`; ``omic_sizes`` (genes per signature group) is required."""
    return CMTA(path_dim=path_dim, omic_sizes=require_sizes(omic_sizes, "cmta"), n_bins=n_bins, **kwargs)
