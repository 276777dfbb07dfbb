"""What models return: small dataclasses of named tensors instead of positional tuples."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class SlideOutput:
    """What a slide aggregator returns for a batch of bags.

    Attributes:
        embedding: One vector per bag, ``(B, E)``.
        tokens: Per-patch output vectors, ``(B, N, E)``, in the input patch order; padded positions are zero.
            ``None`` when the aggregator has no per-patch output.
        attention: Per-patch pooling weights, ``(B, N)``, each row summing to 1 over real patches and 0 at
            padded positions. ``None`` when the aggregator does not pool by attention.
    """

    embedding: Tensor
    tokens: Tensor | None = None
    attention: Tensor | None = None


@dataclass
class SurvivalOutput:
    """Discrete-time survival prediction over ``T`` time bins (MCAT lineage, used by mSTAR).

    Attributes:
        logits: Raw scores, ``(B, T)``.
        hazards: ``sigmoid(logits)``: probability of the event in bin t given survival to it, ``(B, T)``.
        S: Survival function ``cumprod(1 - hazards)``, ``(B, T)``.
        risk: ``-sum(S)``, higher means shorter predicted survival, ``(B,)``; feeds the C-index.
    """

    logits: Tensor
    hazards: Tensor
    S: Tensor
    risk: Tensor


@dataclass
class MILOutput:
    """What an aggregator + head (:class:`mstar.models.mil.MILModel`) returns.

    Attributes:
        logits: The head's raw scores, ``(B, C)`` (classes or time bins).
        slide: The aggregator's output (embedding, tokens, attention).
        survival: Hazards, survival function and risk when the head is a survival head, else ``None``.
    """

    logits: Tensor
    slide: SlideOutput
    survival: SurvivalOutput | None = None
