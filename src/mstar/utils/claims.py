"""Per-item claims between processes sharing one output folder: an advisory ``flock`` on a hidden lock file.

Two ``mstar extract`` runs on one folder each claim a slide before working on it; a slide claimed by the
other is left to it (and waited for at the end). The operating system drops a claim when its process
ends, however it ends (``kill -9`` included), so a claim can never be left stuck. Where ``fcntl`` is missing
(Windows) every claim succeeds: runs are then independent, as before.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


CLAIMS_DIR = ".claims"


def lock_path(final: str | os.PathLike) -> Path:
    """The lock file of an output file: ``.claims/<stem>.lock`` in its folder. Lock files stay (removing one
    while another process waits on it would let two processes hold "the" claim)."""
    final = Path(final)
    return final.parent / CLAIMS_DIR / f"{final.stem}.lock"


class Claim:
    """A held claim; :meth:`release` (or garbage collection, or process exit) gives it up."""

    def __init__(self, fd: int | None, path: Path) -> None:
        self._fd, self.path = fd, path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def try_claim(final: str | os.PathLike) -> Claim | None:
    """Claim ``final``'s lock without waiting: the :class:`Claim`, or None when another process holds it."""
    path = lock_path(final)
    if fcntl is None:
        return Claim(None, path)
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Claim(fd, path)


def wait_claim(final: str | os.PathLike) -> Claim:
    """Claim ``final``'s lock, waiting while another process holds it (until it finishes or dies)."""
    path = lock_path(final)
    if fcntl is None:
        return Claim(None, path)
    fd = _open(path)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return Claim(fd, path)


def is_claimed(final: str | os.PathLike) -> bool:
    """True while another process holds ``final``'s claim (its lock file exists and is locked)."""
    path = lock_path(final)
    if fcntl is None or not path.exists():
        return False
    claim = try_claim(final)
    if claim is None:
        return True
    claim.release()
    return False
