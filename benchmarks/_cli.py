"""What every benchmark script shares: where the shared data folder is, output-folder guards, and a ``main``
wrapper that turns expected errors into one line.

The shared data folder (``slides/``, ``tcga_omics/``, ``tcga_reports/``, ...) is, in this order: the path a
script's option names; ``$MSTAR_SHARED_DATA``; ``<repo>/shared/data`` (where a GPU machine's copy puts it);
``<repo>/../shared/data`` (beside the clone).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mstar.errors import MstarError

REPO = Path(__file__).resolve().parents[1]
ENV = "MSTAR_SHARED_DATA"
MARKER = ".mstar-benchmark"


def data_candidates() -> list[Path]:
    """The shared data folders searched when no option names one (``$MSTAR_SHARED_DATA`` alone when set)."""
    if os.environ.get(ENV):
        return [Path(os.environ[ENV])]
    return [REPO / "shared" / "data", REPO.parent / "shared" / "data"]


def shared_data(relative: str = "", explicit: Path | None = None, option: str = "--data") -> Path:
    """``explicit`` when given (it must exist), else ``relative`` inside the first shared data folder that
    holds it. Raises :class:`MstarError` saying where it looked and how to point at it."""
    if explicit is not None:
        if not explicit.exists():
            raise MstarError(f"{option} {explicit}: no such file or folder")
        return explicit
    tried = [folder / relative if relative else folder for folder in data_candidates()]
    for path in tried:
        if path.exists():
            return path
    what = relative or "the shared data folder"
    raise MstarError(f"{what} not found (looked in {', '.join(str(p) for p in tried)}); pass {option} PATH "
                     f"or set {ENV} to the shared data folder")


def new_folder(path: Path, option: str = "--out") -> Path:
    """Create ``path``; refuse one that exists and is not empty (so that nothing finished before is reused
    and every run measures)."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise MstarError(f"{option} {path}: exists and is not empty; give a new folder (or remove it)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def own_folder(path: Path, owner: str, option: str) -> Path:
    """Create ``path`` or reuse it when an earlier run of ``owner`` made it; refuse any other non-empty
    folder (a shared default such as ``/tmp/...`` may hold someone else's runs)."""
    marker = path / MARKER
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not marker.is_file() or marker.read_text().strip() != owner:
            raise MstarError(f"{option} {path}: not empty and not an earlier output of {owner}; give a new "
                             "folder")
    path.mkdir(parents=True, exist_ok=True)
    marker.write_text(owner + "\n")
    return path


def run_child(cmd: list[str], what: str) -> str:
    """Run a child process (capturing its output) and return its stdout; when it fails, raise
    :class:`MstarError` with the last lines of its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(tail, file=sys.stderr)
        raise MstarError(f"{what} failed (exit status {proc.returncode}; the end of its stderr is above)")
    return proc.stdout


def run(main: Callable[[], int | None]) -> None:
    """Call ``main`` and exit with its status; a :class:`MstarError`, ``OSError`` or ``ValueError`` becomes
    ``error: <message>`` on stderr (one line) and exit status 1."""
    try:
        code = main()
    except (MstarError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
