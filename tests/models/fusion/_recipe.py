"""The seeded recipe behind the multimodal fixtures in tests/fixtures/upstream (mcat, motcat, porpoise, cmta).

Weights come from :func:`tests.models._upstream_recipe.seeded_state_dict` with the seeds below, bags from
``seeded_bag``; the omic inputs are drawn here. The README in tests/fixtures/upstream describes the recording.
"""

from __future__ import annotations

import torch

from tests.models._upstream_recipe import load_fixture, seeded_bag, seeded_state_dict

__all__ = ["CHUNK_CASES", "FUSION_WEIGHT_SEEDS", "MOTCAT_CHUNK_SIZE", "OMIC_SIZES", "PORPOISE_OMIC_DIM",
           "load_fixture", "seeded_bag", "seeded_omic_vector", "seeded_omics", "seeded_state_dict"]

FUSION_WEIGHT_SEEDS = {"mcat": 21, "motcat": 22, "porpoise": 23, "cmta": 24}
OMIC_SIZES = (31, 57, 89, 64, 120, 45)  # made-up signature-group sizes (upstream_state_dicts.md)
PORPOISE_OMIC_DIM = 200
OMIC_SEED, OMIC_VECTOR_SEED = 3, 4
MOTCAT_CHUNK_SIZE = 128  # small chunk size for the chunking fixture: 300 patches -> 300 // 128 + 1 = 3 chunks
CHUNK_CASES = ((2, 0.0), (1, 1.0))  # (time bin y, censorship c) of the chunk-averaged loss fixtures


def seeded_omics(sizes: tuple[int, ...] = OMIC_SIZES, seed: int = OMIC_SEED) -> list[torch.Tensor]:
    """One ``(1, size)`` standard-normal tensor per signature group, from one generator seeded ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, size, generator=gen) for size in sizes]


def seeded_omic_vector(dim: int = PORPOISE_OMIC_DIM, seed: int = OMIC_VECTOR_SEED) -> torch.Tensor:
    """The full omic vector ``(1, dim)`` of the Porpoise fixtures."""
    return torch.randn(1, dim, generator=torch.Generator().manual_seed(seed))
