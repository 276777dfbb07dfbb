"""Feature folders list finished files only: the temporaries of atomic writes are never slides."""

from __future__ import annotations

import h5py
import numpy as np

from mstar.data.feature_dirs import feature_slides, folder_identity, resolve_feature_dir
from mstar.utils.atomic import TMP_MARK, finished_files


def _features(path, encoder: str) -> None:
    with h5py.File(path, "w") as f:
        f["features"] = np.zeros((2, 4), np.float32)
        f.attrs["encoder"] = encoder


def test_writes_under_way_are_not_slides_nor_the_folders_identity(tmp_path):
    folder = tmp_path / "work" / "features" / "enc"
    folder.mkdir(parents=True)
    _features(folder / f".A{TMP_MARK}x1.h5", "half-written")  # sorts first: a write still under way
    _features(folder / "B.h5", "enc")
    (folder / "C.pt").write_bytes(b"")
    (folder / "notes.txt").write_text("")
    assert feature_slides(folder) == ["B", "C"]
    assert folder_identity(folder)["encoder"] == "enc"
    assert [p.name for p in finished_files(folder, (".h5",))] == ["B.h5"]
    assert finished_files(tmp_path / "absent", (".h5",)) == []
    only_parts = tmp_path / "parts"
    only_parts.mkdir()
    _features(only_parts / f".A{TMP_MARK}x2.h5", "half-written")
    assert feature_slides(only_parts) == [] and folder_identity(only_parts) == {}
    assert resolve_feature_dir(tmp_path / "work") == folder  # found below the work folder
