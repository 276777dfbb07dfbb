"""A slide-level model = an aggregator composed with a task head."""

from __future__ import annotations

from torch import Tensor, nn

from mstar.models.heads import SurvivalHead
from mstar.models.output import MILOutput


class MILModel(nn.Module):
    """``head(aggregator(x, mask).embedding)``.

    Its state_dict keys are ``aggregator.*`` and ``head.fc.*``; :mod:`mstar.models.upstream` converts to and
    from the upstream mSTAR layout (``classifier`` / ``classifier.0`` at the top level).

    Args:
        aggregator: Module with ``forward(x, mask) -> SlideOutput`` and an ``embed_dim`` attribute.
        head: :class:`~mstar.models.heads.ClassificationHead` or :class:`~mstar.models.heads.SurvivalHead`.
    """

    def __init__(self, aggregator: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.aggregator = aggregator
        self.head = head

    @property
    def task(self) -> str:
        """``survival`` or ``classification``."""
        return "survival" if isinstance(self.head, SurvivalHead) else "classification"

    def forward(self, x: Tensor, mask: Tensor | None = None) -> MILOutput:
        """``x`` ``(B, N, D)``, ``mask`` ``(B, N)`` bool or None -> :class:`MILOutput` (logits ``(B, C)``)."""
        slide = self.aggregator(x, mask)
        out = self.head(slide.embedding)
        if self.task == "survival":
            return MILOutput(logits=out.logits, slide=slide, survival=out)
        return MILOutput(logits=out, slide=slide)
