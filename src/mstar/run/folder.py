"""The one run-folder writer: ``<out>/<kind>/<name>/`` with ``config.yaml`` and ``run.json``.

Every command that produces results opens its folder through :func:`open_run`, loads its inputs, then
calls :meth:`RunFolder.start`:

- a new folder gets ``config.yaml`` (the resolved settings; ``--config`` on it re-runs the command) and
  ``run.json`` (``status: running`` plus the fingerprint of settings and inputs);
- an existing folder with the same fingerprint is resumed, or, when ``run.json`` says ``finished``,
  reported as finished (nothing is recomputed);
- an existing folder with another fingerprint stops with one line naming what changed and offering
  ``--overwrite`` (start again) or ``--name`` (a new run beside it);
- ``overwrite`` replaces the folder when the run starts (rank 0 only under DDP), so a command that fails
  on its inputs keeps the old run.

:meth:`RunFolder.finish` marks the run finished after every output is written (outputs are atomic, so a
killed run is never mistaken for a finished one).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mstar.errors import MstarError, some
from mstar.run.config import RunConfig
from mstar.run.fingerprint import differences, environment_rank, fingerprint
from mstar.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)
RECORD = "run.json"


def read_record(path: Path) -> dict | None:
    """``run.json`` of a run folder, or None."""
    record = path / RECORD
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text())
    except json.JSONDecodeError as exc:
        raise MstarError(f"{record}: unreadable ({exc.msg}); pass --overwrite to start the run "
                         "again") from None


def record_field(path: str | os.PathLike, key: str) -> Any:
    """One field of a run folder's ``run.json`` (``kind``, ``cwd`` ...), or None when the folder has no
    readable record (never an error: callers use it to word a message or to resolve a path)."""
    try:
        record = read_record(Path(path))
    except (MstarError, OSError):
        return None
    return record.get(key) if isinstance(record, dict) else None


@dataclass
class RunFolder:
    """An opened run folder.

    Attributes:
        path: The folder.
        finished: True when it already holds the finished run with these inputs.
        record: The content of ``run.json``.
    """

    path: Path
    finished: bool
    record: dict = field(default_factory=dict)
    replace: bool = False          # overwrite: the old folder is deleted by start()
    started: float = field(default_factory=time.time)

    @property
    def resumable(self) -> bool:
        """True when an earlier attempt of this same run may have left a resume point."""
        return not self.replace and (self.path / RECORD).is_file()

    def start(self, cfg: RunConfig) -> Path:
        """Create the folder with ``config.yaml`` and ``run.json`` (a resumed run keeps its own); return it.

        Called once the inputs have loaded, so a command that fails on its inputs leaves no folder behind.
        """
        if environment_rank() != 0:  # rank 0 judges and creates the folder; the others wait for it, so
            self._wait_for_rank0()     # none writes into it before rank 0 has checked it is a run folder
            return self.path
        if self.replace and self.path.exists():
            shutil.rmtree(self.path)
            self.replace = False
        elif (self.path / RECORD).is_file():
            return self.path
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path / "config.yaml", cfg.to_yaml())
            write_text_atomic(self.path / RECORD, json.dumps(self.record, indent=1, default=str) + "\n")
        except OSError as exc:
            raise MstarError(f"{self.path}: cannot write the run folder ({exc.strerror or exc}); pass a "
                             "writable --out") from None
        return self.path

    def _wait_for_rank0(self, timeout_s: float = 600.0) -> None:
        record = self.path / RECORD
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            # a replaced folder counts once rank 0 has rewritten its run.json (not the old one)
            if record.is_file() and (not self.replace or record.stat().st_mtime >= self.started - 1):
                return
            time.sleep(0.05)
        raise MstarError(f"{self.path}: rank 0 did not create the run folder within {timeout_s:.0f} s")

    def finish(self, **summary: Any) -> None:
        """Mark the run finished (written last, after every output)."""
        self.save_record(status="finished", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                         seconds=round(time.time() - self.started, 1), **summary)
        self.finished = True

    def save_record(self, **fields: Any) -> None:
        """Update ``run.json`` with ``fields`` (atomically; rank 0 only)."""
        if environment_rank() != 0:
            return
        self.record.update(fields)
        write_text_atomic(self.path / RECORD, json.dumps(self.record, indent=1, default=str) + "\n")


def open_run(cfg: RunConfig, overwrite: bool = False, path: Path | None = None) -> RunFolder:
    """Check the run folder of ``cfg``: new, to resume, or finished; :meth:`RunFolder.start` creates it.

    Args:
        cfg: The validated settings; ``cfg.run_dir()`` is the folder unless ``path`` is given.
        overwrite: Delete an existing folder first.
        path: The folder, when the command names it itself (a file's sibling, an evaluation inside a run).

    Raises:
        MstarError: The folder holds a run made from other settings or inputs, or files that are not a run.
    """
    path = Path(path) if path is not None else cfg.run_dir()
    if path.exists() and not path.is_dir():
        raise MstarError(f"{path}: exists and is not a folder; pass {cfg.BESIDE}")
    new = fingerprint(cfg.identity(), cfg.input_paths())
    record = None if overwrite else read_record(path)
    if record is not None:
        changed = differences(record.get("fingerprint", {}), new)
        if changed:
            shown = some(changed, 4, "; ")
            raise MstarError(f"{path}: this run was made from other settings or inputs ({shown}); pass "
                             f"--overwrite to redo it, or {cfg.BESIDE}")
        if record.get("status") == "finished":
            log.info("%s: already finished with these settings and inputs", path)
            return RunFolder(path, True, record)
        return RunFolder(path, False, record)
    if not overwrite and environment_rank() == 0 and path.is_dir() and any(path.iterdir()):
        # (other DDP ranks may see rank 0's folder half-written: rank 0 alone judges it)
        raise MstarError(f"{path}: holds files but no {RECORD} (not a run folder of this mstar version); "
                         f"pass --overwrite to replace it, or {cfg.BESIDE}")
    record = {"kind": cfg.group(), "status": "running", "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "cwd": os.getcwd(),  # relative paths of config.yaml are relative to it (RunConfig.load)
              "fingerprint": new}
    return RunFolder(path, False, record, replace=overwrite and path.exists())
