"""Writing and reading model files: atomically, and with a one-line error when the disk refuses or a file is
empty, truncated or not a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mstar.errors import MstarError, first_line
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
    except IsADirectoryError:
        raise MstarError(f"{path}: is a folder; a model file cannot be written there") from None
    except (OSError, RuntimeError) as exc:
        reason = (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]
        raise MstarError(f"{path}: could not be written ({reason}); free disk space or pass another "
                         "--out") from None
    return path


def load_checkpoint(path: str | os.PathLike, weights_only: bool = True, what: str = "checkpoint",
                    hint: str = "") -> Any:
    """``torch.load(path)`` on the CPU, its failures as one :class:`MstarError` naming the file and why
    (:func:`unreadable_reason`), followed by ``hint`` (what to do)."""
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: {what} not found{hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise MstarError(f"{path}: cannot read this {what} ({unreadable_reason(path, exc)}){hint}") from exc


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words: an empty, truncated or damaged file, an
    HDF5 file (tiles or features given for a checkpoint), a file that is no checkpoint at all, a file holding
    Python objects besides tensors, or the loader's first line (never torch's advice to unpickle the
    file)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as err:  # unreadable (permissions): that is the reason
        return err.strerror or type(err).__name__
    if not magic:
        return "the file is empty (an interrupted copy?)"
    if magic == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 file (tiles or features?), not a checkpoint"
    if "Weights only load failed" in str(exc):
        return ("it holds Python objects besides tensors, which mstar does not unpickle (is it a checkpoint "
                "mstar wrote?)")
    if magic.startswith(b"PK\x03\x04") or (magic.startswith(b"\x80") and isinstance(exc, EOFError)):
        return "the file is incomplete or damaged (a truncated copy?); copy it again"  # zip or legacy pickle
    if not magic.startswith(b"\x80"):
        return "not a PyTorch checkpoint (neither torch.save's zip nor a pickle); is it the right file?"
    return first_line(exc)
