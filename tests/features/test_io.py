import h5py
import numpy as np
import pytest
import torch

from mstar.errors import MstarError
from mstar.features.io import features_path, load_features, pt_path
from mstar.features.writer import write_features_file, write_pt_file

FEATS = np.arange(12, dtype=np.float32).reshape(4, 3)
COORDS = np.array([[0, 0], [256, 0], [0, 256], [256, 256]], np.int64)


def test_ours_round_trip(tmp_path):
    path = features_path(tmp_path, "enc", "s1")
    write_features_file(path, FEATS, COORDS, {"encoder": "enc", "dim": 3, "mean": [0.5, 0.5, 0.5]})
    f, c, a = load_features(path)
    np.testing.assert_array_equal(f, FEATS)
    np.testing.assert_array_equal(c, COORDS)
    assert a["encoder"] == "enc" and a["dim"] == 3 and a["coords_known"]
    assert f.dtype == np.float32 and c.dtype == np.int64


def test_clam_h5_and_pt_files(tmp_path):
    # CLAM: FEATURES/h5_files/<slide>.h5 (features + coords, attrs on coords) and FEATURES/pt_files/<slide>.pt
    (tmp_path / "h5_files").mkdir()
    with h5py.File(tmp_path / "h5_files" / "s1.h5", "w") as f:
        f["features"] = FEATS
        f["coords"] = COORDS
        f["coords"].attrs["patch_level"] = 0
        f["coords"].attrs["patch_size"] = 512
    (tmp_path / "pt_files").mkdir()
    torch.save(torch.from_numpy(FEATS), tmp_path / "pt_files" / "s1.pt")
    for path in (tmp_path / "h5_files" / "s1.h5", tmp_path / "pt_files" / "s1.pt"):
        f, c, a = load_features(path)
        np.testing.assert_array_equal(f, FEATS)
        np.testing.assert_array_equal(c, COORDS)
        assert a["patch_size"] == 512 and a["coords_known"]


def test_upstream_mstar_pt_with_model_folder_and_ours_mirror(tmp_path):
    write_pt_file(pt_path(tmp_path, "enc", "s1"), FEATS)  # ours: pt_files/enc/s1.pt <-> features/enc/s1.h5
    write_features_file(features_path(tmp_path, "enc", "s1"), FEATS, COORDS, {"encoder": "enc"})
    f, c, a = load_features(pt_path(tmp_path, "enc", "s1"))
    np.testing.assert_array_equal(c, COORDS)
    assert a["encoder"] == "enc"
    bare = tmp_path / "elsewhere" / "pt_files" / "mSTAR" / "s2.pt"  # upstream, no h5 next to it
    write_pt_file(bare, FEATS)
    f, c, a = load_features(bare)
    np.testing.assert_array_equal(f, FEATS)
    assert c.shape == (4, 2) and (c == -1).all() and not a["coords_known"]


def test_trident_features_with_batch_axis(tmp_path):
    path = tmp_path / "features_uni_v1" / "s1.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f["features"] = FEATS[None]  # (1, N, D)
        f["coords"] = COORDS
        f["coords"].attrs["patch_size_level0"] = 512
        f["coords"].attrs["target_magnification"] = 20
    f, c, a = load_features(path)
    assert f.shape == (4, 3) and a["patch_size_level0"] == 512 and a["target_magnification"] == 20


def test_empty_features(tmp_path):
    path = features_path(tmp_path, "enc", "empty")
    write_features_file(path, np.zeros((0, 8), np.float32), np.zeros((0, 2), np.int64), {"dim": 8})
    f, c, _ = load_features(path)
    assert f.shape == (0, 8) and c.shape == (0, 2)


def test_errors(tmp_path):
    with pytest.raises(MstarError, match="features file not found; run `mstar extract` first"):
        load_features(tmp_path / "none.h5")
    with h5py.File(tmp_path / "coords_only.h5", "w") as f:
        f["coords"] = COORDS
    with pytest.raises(MstarError, match="no 'features' dataset"):
        load_features(tmp_path / "coords_only.h5")
    with h5py.File(tmp_path / "mismatch.h5", "w") as f:
        f["features"] = FEATS
        f["coords"] = COORDS[:2]
    with pytest.raises(MstarError, match="4 features but 2 coords"):
        load_features(tmp_path / "mismatch.h5")
    (tmp_path / "x.npy").write_bytes(b"")
    with pytest.raises(MstarError, match="unknown features format"):
        load_features(tmp_path / "x.npy")
