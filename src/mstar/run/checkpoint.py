"""Writing model files: atomically, and with a one-line error when the disk refuses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mstar.errors import MstarError
from mstar.utils.atomic import atomic_path


def save_checkpoint(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary sibling renamed on success.

    Raises:
        MstarError: The file could not be written (disk full, no permission); ``path`` is left untouched.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:
        reason = (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]
        raise MstarError(f"{path}: could not be written ({reason}); free disk space or pass another "
                         "--out") from None
    return path
