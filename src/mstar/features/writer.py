"""Writing one slide's features atomically, on a background thread so the encoder never waits for disk."""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mstar.utils.atomic import atomic_path


def write_features_file(path: str | os.PathLike, features: np.ndarray, coords: np.ndarray,
                        attrs: dict, datasets: dict[str, np.ndarray] | None = None) -> None:
    """Write ``features`` (N, D) float32, ``coords`` (N, 2) int64, ``attrs`` on the root and on ``coords``
    (and ``datasets`` beside them, e.g. a multi-resolution file's ``context_features``).

    The attrs go on ``coords`` too because CLAM/TRIDENT readers look there. No timestamps are stored, so the
    same inputs give the same bytes.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    coords = np.ascontiguousarray(coords, dtype=np.int64).reshape(-1, 2)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.create_dataset("features", data=features, track_times=False)
        for name, array in (datasets or {}).items():
            f.create_dataset(name, data=array, track_times=False)
        ds = f.create_dataset("coords", data=coords, track_times=False)
        for key, value in attrs.items():
            if value is None:
                continue
            f.attrs[key] = value
            ds.attrs[key] = value


def write_pt_file(path: str | os.PathLike, features: np.ndarray) -> None:
    """``torch.save(Tensor[N, D] float32)``, the upstream mSTAR / CLAM ``pt_files`` layout."""
    import io

    import torch

    buffer = io.BytesIO()  # via a buffer: torch.save names the archive after the (random) temporary file
    torch.save(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)), buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


@dataclass
class WriteJob:
    """One slide's outputs."""

    h5_path: Path
    features: np.ndarray  # (N, D)
    coords: np.ndarray  # (N, 2)
    attrs: dict
    pt_path: Path | None = None


def write_job(job: WriteJob) -> None:
    """Write the ``.pt`` mirror (if asked) before the ``.h5``: the h5 marks the slide as complete."""
    if job.pt_path is not None:
        write_pt_file(job.pt_path, job.features)
    write_features_file(job.h5_path, job.features, job.coords, job.attrs)


class FeatureWriter:
    """A background thread writing :class:`WriteJob` s in order.

    ``submit`` blocks when ``max_pending`` jobs wait (bounded memory). An error in the thread is raised
    again by the next ``submit`` or by ``close``.
    """

    def __init__(self, max_pending: int = 2):
        self._queue: queue.Queue[WriteJob | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.written: list[Path] = []
        self._thread = threading.Thread(target=self._run, name="mstar-feature-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    write_job(job)
                    self.written.append(job.h5_path)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, job: WriteJob) -> None:
        self._raise()
        self._queue.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first write error, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:  # finish what was queued (complete slides), but let the original error win
            try:
                self.close()
            except BaseException:  # noqa: BLE001
                pass
