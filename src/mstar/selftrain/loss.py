"""The stage-2 loss (exact form and reasons: ``docs/selftrain.md``).

For a batch of patch images ``x_i`` with teacher targets ``T_i``::

    L = mean_i [1 - cos(proj(f_theta(x_i)), T_i)]  +  lambda * mean_i [1 - cos(f_theta(x_i), sg(f_xi(x_i)))]

``f_theta`` is the student backbone, ``proj`` its copy of the stage-1 projection (frozen by default),
``f_xi`` the EMA backbone (no gradient, ``sg`` = stop-gradient) and ``lambda = 0.6``. Both terms are cosine
distances in ``[0, 2]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-row ``1 - cos(a, b)`` in float32, ``(B,)``."""
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-8)


def self_train_loss(projected: Tensor, targets: Tensor, features: Tensor, ema_features: Tensor,
                    ema_weight: float = 0.6) -> dict[str, Tensor]:
    """The loss and its named terms.

    Args:
        projected: ``proj(f_theta(x))`` ``(B, E)``.
        targets: teacher tokens ``(B, E)``.
        features: ``f_theta(x)`` ``(B, D)``.
        ema_features: ``f_xi(x)`` ``(B, D)``; treated as a constant.
        ema_weight: lambda.

    Returns:
        ``{"loss", "target", "ema"}``: total and the two mean cosine distances.
    """
    target = cosine_distance(projected, targets).mean()
    ema = cosine_distance(features, ema_features.detach()).mean()
    return {"loss": target + ema_weight * ema, "target": target, "ema": ema}
