"""Atomic file output: write to a temporary sibling, rename into place only on success.

A killed run therefore never leaves a truncated file under the final name, so "the file exists" can be
used as "the step is complete" (that is how every resumable stage skips finished work).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".part-"


def _read_umask() -> int:
    """The process umask (read by setting and restoring it; no portable getter exists)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: toggling it later would race with writer threads


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` when the block exits cleanly.

    The temporary name keeps the suffix of ``final`` (some writers pick the format by suffix). On an
    exception the temporary file is removed and ``final`` is left untouched. The file gets the mode any
    new file would get under the user's umask (``mkstemp`` creates 0600, which a rename would keep, so a
    shared work folder would be unreadable to colleagues and group jobs).
    """
    final = Path(final)
    if final.is_dir():  # said before any work, naming the target (not the temporary that the rename fails on)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}{TMP_MARK}", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if tmp_path.exists():
                os.chmod(tmp_path, 0o666 & ~_UMASK)
            os.replace(tmp_path, final)
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:  # a failed write() names no file: name it
                raise OSError(exc.errno, exc.strerror, str(final)) from exc
            raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(final: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def write_text_if_changed(final: str | os.PathLike, text: str) -> bool:
    """Write ``text`` (UTF-8) to ``final`` atomically unless the file already holds exactly those bytes (its
    time then stays, so the folder digests of runs that read it do not change when a resumable step writes
    it again). Returns whether the file was written."""
    final = Path(final)
    data = text.encode("utf-8")
    try:
        if final.is_file() and final.stat().st_size == len(data) and final.read_bytes() == data:
            return False
    except OSError:
        pass
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return True


def finished_files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` ending in one of ``suffixes``, sorted, without hidden files: the temporaries
    of :func:`atomic_path` (``.<stem>.part-XXXX.h5``) are writes still under way or left by a killed run,
    never results. An absent folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in suffixes and not p.name.startswith(".")
                  and p.is_file())


def remove_stale_parts(folder: str | os.PathLike) -> int:
    """Delete temporary files left by killed runs in ``folder``; return how many were removed.

    A temporary file whose output is claimed by a live process (:mod:`mstar.utils.claims`) is being written
    right now and is left alone."""
    from mstar.utils.claims import is_claimed

    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and TMP_MARK in p.name
             and not is_claimed(folder / (p.name[1:].split(TMP_MARK)[0] + p.suffix))]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
