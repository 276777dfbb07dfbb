"""Learning-rate schedules shared by the stages."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then a half cosine from 1 down to ``floor``
    at step ``total`` (and ``floor`` after it)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * (math.cos(math.pi * t) + 1) / 2
