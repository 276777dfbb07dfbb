"""MOTCat (Xu & Chen, ICCV 2023): MCAT with the co-attention replaced by unbalanced optimal transport.

As upstream mSTAR's ``MOTCAT_Surv`` (``ot_impl='pot-uot-l2'``) for one bag of ``n`` patches and ``G`` groups::

    x, y  = wsi_net(patches) (n, 256), sig tokens (G, 256), each row shifted by its minimum
    C     = cdist(x, y) ** 2 / max                        (n, G), detached
    pi    = POT sinkhorn_knopp_unbalanced(unif(n), unif(G), C, reg=0.1, reg_m=0.5)   float64, no gradient
    t     = pi^T @ wsi_net(patches)                       (G, 256)  one path token per group

then the trunk shared with MCAT (:class:`~mstar.models.fusion.common.GenomicGuidedTrunk`). The transport has
no parameters: the state_dict equals upstream's (96 keys for 6 groups).

Chunks (upstream engine): a bag of ``n`` patches is shuffled and split into ``n // chunk_size + 1`` nearly
equal chunks (``np.array_split`` sizes); each chunk is one forward pass; the loss is the mean of the chunk
losses and the risk the mean of the chunk risks. Bags with ``n < chunk_size`` are one chunk in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.fusion.common import (
    FusionOutput,
    GenomicGuidedTrunk,
    OmicsInput,
    check_omics,
    check_path,
    encode_signatures,
    require_sizes,
)
from mstar.models.heads import survival_from_logits
from mstar.models.output import SurvivalOutput
from mstar.models.registry import register_model

CHUNK_SIZE = 16_384  # upstream engine's split_chunk_list(data_WSI, 16384)


class OTCoAttention(nn.Module):
    """Unbalanced optimal-transport co-attention (upstream ``OT_Attn_assem``, ``pot-uot-l2``); no parameters.

    Args:
        reg: Entropic regularisation (upstream ``ot_reg`` 0.1).
        reg_m: Marginal relaxation (upstream ``ot_tau`` 0.5).
    """

    def __init__(self, reg: float = 0.1, reg_m: float = 0.5) -> None:
        super().__init__()
        self.reg, self.reg_m = reg, reg_m

    def forward(self, h_path: Tensor, h_omic: Tensor) -> Tensor:
        """Transport plan from ``n`` patches ``(n, E)`` to ``G`` omic tokens ``(G, E)``, as ``(G, n)``.

        Computed in float64 by POT from detached costs (no gradient, as upstream), returned in ``h_path``'s
        dtype.
        """
        import ot  # lazy: POT (and SciPy) take seconds to import

        x = h_path - h_path.min(-1)[0].unsqueeze(-1)  # (n, E)
        y = h_omic - h_omic.min(-1)[0].unsqueeze(-1)  # (G, E)
        cost = (torch.cdist(x, y) ** 2).detach()  # (n, G)
        cost = cost / cost.max().clamp_min(torch.finfo(cost.dtype).tiny)
        a = torch.from_numpy(ot.unif(x.shape[0]).astype("float64")).to(x.device)  # (n,)
        b = torch.from_numpy(ot.unif(y.shape[0]).astype("float64")).to(x.device)  # (G,)
        plan = ot.unbalanced.sinkhorn_knopp_unbalanced(a=a, b=b, M=cost.double(), reg=self.reg,
                                                       reg_m=self.reg_m)  # (n, G) float64
        return plan.to(h_path.dtype).T  # (G, n)


def split_chunks(perm: Tensor, chunk_size: int) -> list[Tensor]:
    """Upstream ``split_chunk_list``: ``perm`` (a permutation of a bag's patch indices) cut into
    ``len(perm) // chunk_size + 1`` consecutive pieces of ``np.array_split`` sizes."""
    return list(torch.tensor_split(perm, len(perm) // chunk_size + 1))


class MOTCat(GenomicGuidedTrunk):
    """MOTCat with concat fusion (upstream ``MOTCAT_Surv(fusion='concat')``).

    Args:
        path_dim: Patch feature width (1024).
        omic_sizes: Genes per signature group.
        n_bins: Discrete time bins (4).
        dropout: Transformer / attention-head / rho dropout (0.25).
        ot_reg: Entropic regularisation (0.1).
        ot_tau: Unbalanced marginal penalty ``reg_m`` (0.5).
        chunk_size: Patches per chunk as upstream (16,384); bags of at least this many patches are chunked.
        chunk_seed: Seed of the shuffle in eval mode, so evaluation is reproducible; in training mode the
            shuffle draws from torch's global generator (upstream shuffles with Python's ``random`` in both
            modes).

    Batching: the transport is solved bag by bag on the real patches only, so a padded bag gives exactly its
    batch-of-one output; the trunk after the co-attention runs on the whole batch.

    Attention: ``coattn`` ``(B, 1, G, N)`` the transport plan transposed (float32; each chunk's plan in its
    patches' columns; 0 at padding); ``path`` ``(B, G)`` pre-softmax gated scores (mean over chunks); ``omic``
    ``(B, G)``.
    """

    def __init__(self, path_dim: int = 1024, omic_sizes: Sequence[int] = (), n_bins: int = 4,
                 dropout: float = 0.25, ot_reg: float = 0.1, ot_tau: float = 0.5,
                 chunk_size: int = CHUNK_SIZE, chunk_seed: int = 0) -> None:
        super().__init__(path_dim, omic_sizes, n_bins, dropout)
        if chunk_size < 1:
            raise MstarError(f"chunk_size must be >= 1; got {chunk_size}")
        self.coattn = OTCoAttention(ot_reg, ot_tau)
        self.chunk_size, self.chunk_seed = chunk_size, chunk_seed

    def chunk_indices(self, n: int, generator: torch.Generator | None = None,
                      perm: Tensor | None = None) -> list[Tensor]:
        """The chunks of a bag of ``n`` real patches (indices into them).

        A single chunk ``arange(n)`` when ``n < chunk_size``; otherwise ``perm`` (default: a random
        permutation from ``generator``; in eval mode without a generator, one seeded by ``chunk_seed``) split
        by :func:`split_chunks`.
        """
        if perm is None and n // self.chunk_size == 0:
            return [torch.arange(n)]
        if perm is None:
            if generator is None and not self.training:
                generator = torch.Generator().manual_seed(self.chunk_seed)
            perm = torch.randperm(n, generator=generator)
        if sorted(perm.tolist()) != list(range(n)):
            raise MstarError(f"chunk permutation must be a permutation of 0..{n - 1}")
        return split_chunks(perm, self.chunk_size)

    def forward(self, x_path: Tensor, mask: Tensor | None = None, omics: OmicsInput = (), *,
                generator: torch.Generator | None = None,
                perms: Sequence[Tensor] | None = None) -> FusionOutput:
        """Predict survival for a batch of cases.

        Args:
            x_path: Patch features ``(B, N, D)``.
            mask: ``(B, N)`` bool, True = real patch; ``None`` = all real.
            omics: One ``(B, size_i)`` tensor per signature group.
            generator: Random generator of the chunk shuffle (see :meth:`chunk_indices`).
            perms: Optional explicit permutation of each bag's real patches (forces chunking by
                :func:`split_chunks`, e.g. to replay upstream's shuffle).
        """
        x_path = check_path(x_path, mask, self.path_dim).to(self.classifier.weight.dtype)
        n_batch, n_max = x_path.shape[:2]
        groups = [g.to(x_path.dtype) for g in check_omics(omics, self.omic_sizes, n_batch, "MOTCat")]
        if perms is not None and len(perms) != n_batch:
            raise MstarError(f"perms needs one permutation per bag ({n_batch}); got {len(perms)}")
        h_path = self.wsi_net(x_path)  # (B, N, 256)
        h_omic = encode_signatures(self.sig_networks, groups)  # (B, G, 256)
        coattn = h_path.new_zeros(n_batch, 1, len(self.omic_sizes), n_max)  # (B, 1, G, N)
        tokens, owners = [], []
        for b in range(n_batch):
            idx = torch.arange(n_max, device=x_path.device) if mask is None else mask[b].nonzero().flatten()
            perm = None if perms is None else perms[b]
            for chunk in self.chunk_indices(idx.numel(), generator, perm):
                cols = idx[chunk.to(idx.device)]  # (n_c,)
                hb = h_path[b, cols]  # (n_c, 256)
                plan = self.coattn(hb, h_omic[b])  # (G, n_c)
                tokens.append(plan @ hb)  # (G, 256)
                coattn[b, 0][:, cols] = plan.detach()
                owners.append(b)
        rows = torch.tensor(owners, device=x_path.device)
        logits_r, a_path_r, a_omic_r = self.head(torch.stack(tokens), h_omic[rows])  # (R, T), (R, G), (R, G)
        return self._merge(logits_r, a_path_r, a_omic_r, owners, coattn)

    def _merge(self, logits_r: Tensor, a_path_r: Tensor, a_omic_r: Tensor, owners: list[int],
               coattn: Tensor) -> FusionOutput:
        """Per-chunk rows -> per-bag outputs (chunk means) and, if any bag was chunked, the chunk outputs."""
        chunked = len(owners) > len(set(owners))
        surv_r = survival_from_logits(logits_r)
        logits, hazards, surv, a_path, a_omic, chunks = [], [], [], [], [], []
        for b in sorted(set(owners)):
            r = [i for i, o in enumerate(owners) if o == b]
            logits.append(logits_r[r].mean(0))
            hazards.append(surv_r.hazards[r].mean(0))
            surv.append(surv_r.S[r].mean(0))
            a_path.append(a_path_r[r].mean(0))
            a_omic.append(a_omic_r[r[0]])
            chunks.append(SurvivalOutput(logits=logits_r[r], hazards=surv_r.hazards[r], S=surv_r.S[r],
                                         risk=surv_r.risk[r]))
        s = torch.stack(surv)  # (B, T)
        survival = SurvivalOutput(logits=torch.stack(logits), hazards=torch.stack(hazards), S=s,
                                  risk=-s.sum(dim=1))
        return FusionOutput(logits=survival.logits, survival=survival,
                            attention={"coattn": coattn, "path": torch.stack(a_path),
                                       "omic": torch.stack(a_omic)},
                            chunks=chunks if chunked else None)


@register_model("motcat", "MOTCat (Xu 2023): MCAT trunk with unbalanced optimal-transport co-attention (POT, "
                          "reg 0.1, reg_m 0.5), bags in chunks of 16,384")
def motcat(path_dim: int = 1024, omic_sizes: Sequence[int] | None = None, n_bins: int = 4,
           **kwargs: Any) -> MOTCat:
    """:class:`MOTCat`; ``omic_sizes`` (genes per signature group) is required."""
    return MOTCat(path_dim=path_dim, omic_sizes=require_sizes(omic_sizes, "motcat"), n_bins=n_bins, **kwargs)
