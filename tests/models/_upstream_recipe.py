"""The seeded recipe behind tests/fixtures/upstream: weights and inputs made from seeds, never stored.

The same functions built the upstream models' weights when the fixtures were recorded (see the README
there), so a test only needs the seed to rebuild identical weights for our models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"

# Seeds of the weights of each upstream model, and of the two input bags.
WEIGHT_SEEDS = {
    "diagnosis_transmil": 11, "diagnosis_abmil": 12, "survival_attmil": 13, "survival_transmil": 14,
}
BAG_SEEDS = {300: 1, 50: 2}
TOKEN_ROWS_300 = (0, 150, 299)  # TransMIL output tokens recorded for the 300-patch bag


def seeded_state_dict(shapes: Mapping[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    """One tensor per key, drawn in sorted key order from one seeded generator.

    LayerNorm weights (keys ending ``norm.weight``) are ``1 + 0.1 * randn``; everything else ``0.05 * randn``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        noise = torch.randn(tuple(shapes[key]), generator=gen)
        out[key] = 1 + 0.1 * noise if key.endswith("norm.weight") else 0.05 * noise
    return out


def seeded_bag(n: int, dim: int = 1024) -> torch.Tensor:
    """The input bag of ``n`` patches, ``(1, n, dim)``, from its seed in :data:`BAG_SEEDS`."""
    gen = torch.Generator().manual_seed(BAG_SEEDS[n])
    return torch.randn(1, n, dim, generator=gen)


def nll_inputs() -> dict[str, torch.Tensor]:
    """A batch of 8 survival predictions: every bin, censored (c=1) and uncensored (c=0)."""
    gen = torch.Generator().manual_seed(5)
    hazards = torch.sigmoid(torch.randn(8, 4, generator=gen))
    return {
        "hazards": hazards,
        "S": torch.cumprod(1 - hazards, dim=1),
        "y": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]),
        "c": torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]),
    }


def load_fixture(name: str) -> dict[str, torch.Tensor]:
    """``tests/fixtures/upstream/<name>.pt``."""
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)
