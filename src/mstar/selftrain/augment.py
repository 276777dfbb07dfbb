"""Light patch augmentations for stage 2, drawn from an explicit generator (resume-exact, worker-safe).

Per patch: a random 90-degree rotation and horizontal flip (the 8 symmetries of a square: tissue has no
orientation), then a colour jitter: brightness ``b``, contrast ``c`` and saturation ``s`` uniform in
``[1 - j, 1 + j]`` and a hue rotation by ``2 pi h`` with ``h`` uniform in ``[-j/5, j/5]`` (stain variation).

The colour jitter is one affine map per patch, applied to the whole batch at once: with gray weights ``w``
(ITU-R 601), ``S = s I + (1 - s) 1 w^T`` (saturation), ``H`` the rotation about the gray axis in YIQ space
(hue) and ``m`` the mean gray level of the patch::

    x' = c b H S x + (1 - c) b m          (then clamped to [0, 255] and rounded)

which equals brightness, then contrast, then saturation, then hue (``S`` and ``H`` leave gray unchanged),
clamping once at the end. Geometry and colour stay mild on purpose: the target of a patch is its teacher
token, computed from the un-augmented patch, so a strong change would make that target wrong for the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

GRAY = torch.tensor([0.299, 0.587, 0.114])
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def colour_matrices(b: np.ndarray, c: np.ndarray, s: np.ndarray, h: np.ndarray) -> torch.Tensor:
    """Per-patch ``(B, 3, 3)`` linear part ``c b H S`` of the jitter (the offset needs the patch mean)."""
    n = len(b)
    eye = torch.eye(3).expand(n, 3, 3)
    s_t = torch.as_tensor(s, dtype=torch.float32).view(n, 1, 1)
    sat = s_t * eye + (1 - s_t) * GRAY.view(1, 1, 3).expand(n, 3, 3)  # rows: s e_i + (1 - s) w
    theta = 2 * math.pi * torch.as_tensor(h, dtype=torch.float32)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(theta), -torch.sin(theta)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(theta), torch.cos(theta)
    hue = torch.linalg.inv(RGB_TO_YIQ) @ rot @ RGB_TO_YIQ  # (B, 3, 3)
    scale = torch.as_tensor(c * b, dtype=torch.float32).view(n, 1, 1)
    return scale * hue @ sat  # (B, 3, 3)


@dataclass(frozen=True)
class Augment:
    """Random symmetries + colour jitter of uint8 tiles.

    Attributes:
        geometric: random rotation by k x 90 degrees and horizontal flip.
        jitter: colour strength ``j`` (0 turns colour jitter off).
    """

    geometric: bool = True
    jitter: float = 0.1

    def __call__(self, tiles: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment each tile independently.

        Args:
            tiles: uint8 ``(B, H, W, 3)`` square tiles.
            rng: the generator every random choice is drawn from.

        Returns:
            uint8 ``(B, H, W, 3)``.
        """
        n = tiles.shape[0]
        if self.geometric:
            k = rng.integers(4, size=n)
            flip = rng.random(n) < 0.5
            out = []
            for tile, ki, fi in zip(tiles, k, flip):
                t = torch.rot90(tile, int(ki), dims=(0, 1))  # (H, W, 3)
                out.append(t.flip(1) if fi else t)
            tiles = torch.stack(out)
        j = float(self.jitter)
        if j <= 0 or n == 0:
            return tiles.contiguous()
        b, c, s = (rng.uniform(1 - j, 1 + j, n) for _ in range(3))
        h = rng.uniform(-j / 5, j / 5, n)
        x = tiles.float()  # (B, H, W, 3)
        mean_gray = (x.mean(dim=(1, 2)) @ GRAY).view(n, 1, 1, 1)  # (B, 1, 1, 1)
        offset = torch.as_tensor((1 - c) * b, dtype=torch.float32).view(n, 1, 1, 1) * mean_gray
        y = torch.einsum("bhwc,bdc->bhwd", x, colour_matrices(b, c, s, h)) + offset  # (B, H, W, 3)
        return y.clamp_(0, 255).round_().to(torch.uint8)
