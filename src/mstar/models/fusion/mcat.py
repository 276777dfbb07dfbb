"""MCAT (Chen et al., ICCV 2021): genomic-guided co-attention over the slide (upstream mSTAR ``MCAT_Surv``).

For one case (``G`` = 6 signature groups)::

    h_path  = wsi_net(x)                                  (N, 256)   Linear-ReLU-Dropout
    h_omic  = [sig_networks[i](omic_i)]                   (G, 256)   two SNN blocks per group
    t_path, A = coattn(query=h_omic, key=value=h_path)    (G, 256)   single-head cross attention, A raw (G, N)
    z_path  = path_rho(gated_pool(path_transformer(t_path)))
    z_omic  = omic_rho(gated_pool(omic_transformer(h_omic)))
    logits  = classifier(mm([z_path, z_omic]))            (T,)       concat fusion

The trunk is :class:`~mstar.models.fusion.common.GenomicGuidedTrunk` (shared with MOTCat); only ``coattn``
is MCAT's own. State_dict keys equal upstream's (100 keys for 6 groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from mstar.models.blocks import all_real
from mstar.models.fusion.common import (
    FusionOutput,
    GenomicGuidedTrunk,
    MultiheadAttention,
    OmicsInput,
    check_omics,
    check_path,
    encode_signatures,
    require_sizes,
)
from mstar.models.heads import survival_from_logits
from mstar.models.registry import register_model


class MCAT(GenomicGuidedTrunk):
    """MCAT with concat fusion (upstream ``MCAT_Surv(fusion='concat')``, "small" sizes).

    Args:
        path_dim: Patch feature width (1024).
        omic_sizes: Genes per signature group (upstream: 6 groups of ``signatures.csv``).
        n_bins: Discrete time bins (4).
        dropout: Transformer / attention-head / rho dropout (0.25).

    Batching: bags of a batch run together; padded patches (``mask`` False) are zeroed and masked out of the
    co-attention keys, so a padded bag gives its batch-of-one outputs (up to float summation order).

    Attention: ``coattn`` ``(B, 1, G, N)`` raw scaled scores before softmax (``-inf`` at padding), as
    upstream; ``path`` and ``omic`` ``(B, G)`` gated-attention scores before softmax.
    """

    def __init__(self, path_dim: int = 1024, omic_sizes: Sequence[int] = (), n_bins: int = 4,
                 dropout: float = 0.25) -> None:
        super().__init__(path_dim, omic_sizes, n_bins, dropout)
        self.coattn = MultiheadAttention(self.dim, heads=1)

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = ()) -> FusionOutput:
        """Predict survival for a batch of cases.

        Args:
            x_path: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True = real patch; ``None`` = all real.
            omics: One ``(B, size_i)`` tensor per signature group.
        """
        x_path = check_path(x_path, mask, self.path_dim).to(self.classifier.weight.dtype)
        groups = [g.to(x_path.dtype) for g in check_omics(omics, self.omic_sizes, x_path.shape[0], "MCAT")]
        h_path = self.wsi_net(x_path)  # (B, N, 256)
        h_omic = encode_signatures(self.sig_networks, groups)  # (B, G, 256)
        padding = None if all_real(mask) else ~mask
        t_path, coattn = self.coattn(h_omic, h_path, key_padding_mask=padding)  # (B, G, 256), (B, 1, G, N)
        logits, a_path, a_omic = self.head(t_path, h_omic)
        return FusionOutput(logits=logits, survival=survival_from_logits(logits),
                            attention={"coattn": coattn, "path": a_path, "omic": a_omic})


@register_model("mcat", "MCAT (Chen 2021): genomic-guided co-attention over the WSI bag + transformers + "
                        "gated pooling, concat fusion; survival over signature groups")
def mcat(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
         **kwargs: Any) -> MCAT:
    """:class:`MCAT`; ``omic_sizes`` (genes per signature group) is required."""
    return MCAT(path_dim=path_dim, omic_sizes=require_sizes(omic_sizes, "mcat"), n_bins=n_bins, **kwargs)
