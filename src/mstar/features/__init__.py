"""Stage 2 of the data path: tiles -> patch features (encoder registry, fast batched extraction, readers).

Public API (imported lazily so ``from mstar.features.io import load_features`` stays light):
``create_encoder``, ``list_encoders``, ``Encoder``, ``extract_features``, ``load_features``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Encoder": "mstar.features.encoders",
    "create_encoder": "mstar.features.encoders",
    "list_encoders": "mstar.features.encoders",
    "extract_features": "mstar.features.extract",
    "load_features": "mstar.features.io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mstar.features' has no attribute {name!r}")
