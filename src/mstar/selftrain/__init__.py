"""Stage 2: self-taught training of the patch encoder from the frozen stage-1 aggregator.

A student patch encoder (timm ViT from the encoder registry + a copy of the stage-1 ``proj``) learns to map
each patch image to the aggregator's output token of that patch (its whole-slide context embedding), while
an EMA copy of the student anchors it against forgetting. See ``docs/selftrain.md``.

Public API (imported lazily): ``SelfTrainConfig``, ``self_train``, ``train_toy_stage1``, ``Teacher``,
``self_train_loss``, ``cosine_momentum``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SelfTrainConfig": "mstar.selftrain.config",
    "self_train": "mstar.selftrain.train",
    "train_toy_stage1": "mstar.selftrain.toy_aggregator",
    "Teacher": "mstar.selftrain.teacher",
    "self_train_loss": "mstar.selftrain.loss",
    "cosine_momentum": "mstar.selftrain.ema",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mstar.selftrain' has no attribute {name!r}")
