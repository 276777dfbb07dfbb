"""What a run was made from: its resolved settings and digests of its input files.

A run folder records this fingerprint in ``run.json``. Re-running into the folder compares the new
fingerprint with the recorded one: equal means "the same run" (resume it, or report it finished); any
difference is named (``epochs 40 -> 50``, ``input 'features' changed``) so a finished run is never reused
for other inputs and its ``config.yaml`` never contradicts its ``metrics.json``.

Digests:

- a file: SHA-256 of its content (files above ``LARGE_BYTES``: size, modification time and the SHA-256 of
  their first and last MiB, so a 1 GB checkpoint costs milliseconds);
- a folder: name, size and modification time of every regular file directly in it (hidden temporary files
  and ``summary.csv`` excluded); copy data with its times (``cp -a``, ``rsync -a``) to keep runs valid;
- a list of files (e.g. the feature files of a manifest's slides): the same per file, so files a run does
  not read never change its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

LARGE_BYTES = 64 * 2**20
EDGE_BYTES = 2**20
IGNORED_NAMES = ("summary.csv",)


def _stat_line(path: Path) -> str:
    st = path.stat()
    return f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (size, time and edges for files above ``LARGE_BYTES``)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= LARGE_BYTES:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
            return "sha256:" + h.hexdigest()
        h.update(f.read(EDGE_BYTES))
        f.seek(size - EDGE_BYTES)
        h.update(f.read(EDGE_BYTES))
    return f"large:{_stat_line(path).replace(chr(0), ':')}:{h.hexdigest()}"


def content_digest(path: Path) -> str:
    """SHA-256 of a file's whole content, whatever its size: what identifies a model (a copy, a moved or
    renamed file has the same digest; :func:`file_digest` keys large files by their name and time)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**22), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One digest over the names, sizes and times of ``paths`` (missing files count as absent)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update((_stat_line(p) if p.is_file() else f"{p.name}\0absent").encode() + b"\n")
    return f"files:{len(paths)}:{h.hexdigest()}"


def folder_files(folder: Path) -> list[Path]:
    """The regular, non-hidden files directly in ``folder`` (what a folder digest covers)."""
    return [p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name not in IGNORED_NAMES]


def path_digest(value: Any) -> str | None:
    """Digest of a file, a folder, a list of files, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return files_digest([Path(v) for v in value])
    path = Path(value)
    if path.is_file():
        return file_digest(path)
    if path.is_dir():
        return files_digest(folder_files(path))
    return f"absent:{path.name}"


def fingerprint(settings: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """``{"settings": ..., "inputs": {name: digest}}``, JSON-normalised so it compares equal after a round
    trip through ``run.json``."""
    doc = {"settings": settings, "inputs": {k: path_digest(v) for k, v in inputs.items()}}
    return json.loads(json.dumps(doc, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, one short phrase per setting or input."""
    out = []
    old_s, new_s = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(old_s) | set(new_s)):
        a, b = old_s.get(key), new_s.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):  # the changed entries: model_args.d_vf 64 -> 128
            changed = [f"{key}.{k} {_short(a[k]) if k in a else '(unset)'} -> "
                       f"{_short(b[k]) if k in b else '(unset)'}"
                       for k in sorted(set(a) | set(b), key=str) if k not in a or k not in b or a[k] != b[k]]
            out += changed or [f"{key} {_short(a)} -> {_short(b)}"]
        else:
            out.append(f"{key} {_short(a)} -> {_short(b)}")
    old_i, new_i = old.get("inputs", {}), new.get("inputs", {})
    for key in sorted(set(old_i) | set(new_i)):
        if old_i.get(key) != new_i.get(key):
            out.append(f"input '{key}' "
                       f"{'changed' if old_i.get(key) and new_i.get(key) else 'added or removed'}")
    return out


def environment_rank() -> int:
    """The global rank a launcher (torchrun, SLURM via Lightning) gave this process; 0 when none."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
