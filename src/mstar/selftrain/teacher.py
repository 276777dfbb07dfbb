"""The frozen stage-1 aggregator as the stage-2 teacher: a slide's patch features -> one target per patch.

``target_i = TransMIL(proj(features))_tokens[i]``: the output token of patch ``i`` after both Nystrom layers,
PPEG and the final LayerNorm, i.e. the patch re-embedded in its whole-slide (multimodal-trained) context.
A slide with more than ``max_context`` patches is split into random disjoint groups of near-equal size
(stage 1 saw at most 4,096 patches per slide), each run as one bag; the split is seeded per slide.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import torch

from mstar.errors import MstarError
from mstar.models.transmil import TransMIL
from mstar.models.upstream import load_stage1_aggregator, read_checkpoint

UNSTORED_ARGS = ("num_landmarks", "pinv_iterations")  # TransMIL settings that are not in the weights


class Teacher:
    """The stage-1 ``proj`` + TransMIL, frozen, in eval mode (not an ``nn.Module`` attribute of the trainer).

    Args:
        aggregator: stage-1 checkpoint path.
        device: where the teacher runs.
        **kwargs: TransMIL settings the weights do not hold (``num_landmarks``, ``pinv_iterations``); by
            default those recorded in the checkpoint's ``config.vision_args`` (mstar stage-1 runs), else
            TransMIL's defaults.
    """

    def __init__(self, aggregator: str | Path, device: torch.device | str = "cpu", **kwargs) -> None:
        self.path = Path(aggregator)
        ckpt = read_checkpoint(self.path)
        config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
        recorded = {k: v for k, v in (config.get("vision_args") or {}).items() if k in UNSTORED_ARGS}
        self.model: TransMIL = load_stage1_aggregator(ckpt, proj="checkpoint", **{**recorded, **kwargs})
        self.model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)

    @property
    def in_dim(self) -> int:
        """Width of the patch features the teacher's ``proj`` takes."""
        return int(self.model.in_dim)

    @property
    def dim(self) -> int:
        """Width of the targets (the TransMIL token width)."""
        return int(self.model.embed_dim)

    def proj_state(self) -> dict[str, torch.Tensor]:
        """``{'weight', 'bias'}`` of the stage-1 ``proj`` (the student starts from a copy)."""
        fc = self.model._fc1[0]
        return {"weight": fc.weight.detach().cpu().clone(), "bias": fc.bias.detach().cpu().clone()}

    def check_dim(self, dim: int, where: str, fix: str) -> None:
        """Raise when features of width ``dim`` (from ``where``) cannot feed the teacher."""
        if dim != self.in_dim:
            raise MstarError(f"{where}: {dim}-d features, but the aggregator {self.path.name} projects "
                             f"{self.in_dim}-d features (proj.weight {self.dim}x{self.in_dim}); {fix}")

    @torch.inference_mode()
    def targets(self, features: np.ndarray | torch.Tensor, max_context: int = 4096,
                slide_id: str = "", seed: int = 0) -> np.ndarray:
        """Per-patch targets of one slide.

        Args:
            features: ``(N, D)`` patch features of the whole slide.
            max_context: most patches per TransMIL pass.
            slide_id, seed: seed the split of large slides (deterministic per slide).

        Returns:
            ``(N, E)`` float32 targets, row ``i`` for patch ``i``.
        """
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))  # (N, D)
        if x.ndim != 2:
            raise MstarError(f"{slide_id}: features must be (N, D), got {tuple(x.shape)}")
        n = x.shape[0]
        out = torch.empty(n, self.dim)  # (N, E)
        if n == 0:
            return out.numpy()
        groups = math.ceil(n / max_context)
        if groups == 1:
            order = torch.arange(n)
        else:
            gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{slide_id}".encode()))
            order = torch.randperm(n, generator=gen)
        for idx in torch.tensor_split(order, groups):
            bag = x[idx].unsqueeze(0).to(self.device)  # (1, n_g, D)
            tokens = self.model(bag).tokens[0]  # (n_g, E)
            out[idx] = tokens.float().cpu()
        return out.numpy()
