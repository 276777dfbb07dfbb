import numpy as np
import pytest

import mstar.features.writer as writer_mod
from mstar.features.io import load_features
from mstar.features.writer import FeatureWriter, WriteJob, write_features_file

FEATS = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
COORDS = np.arange(10, dtype=np.int64).reshape(5, 2)


def test_same_inputs_same_bytes(tmp_path):
    for name in ("a.h5", "b.h5"):
        write_features_file(tmp_path / name, FEATS, COORDS, {"encoder": "x", "dim": 4})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_background_writer_writes_in_order_with_pt(tmp_path):
    with FeatureWriter(max_pending=1) as w:
        for i in range(3):
            pt = tmp_path / "pt" / f"s{i}.pt"
            w.submit(WriteJob(tmp_path / f"s{i}.h5", FEATS + i, COORDS, {"i": i}, pt))
    assert w.written == [tmp_path / f"s{i}.h5" for i in range(3)]
    f, c, a = load_features(tmp_path / "pt" / "s2.pt")
    np.testing.assert_array_equal(f, FEATS + 2)


def test_writer_error_is_raised_and_leaves_no_partial_file(tmp_path, monkeypatch):
    real = writer_mod.write_features_file

    def failing(path, *args, **kwargs):
        if path.name == "s1.h5":
            raise OSError("disk full")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(writer_mod, "write_features_file", failing)
    w = FeatureWriter()
    w.submit(WriteJob(tmp_path / "s0.h5", FEATS, COORDS, {}))
    w.submit(WriteJob(tmp_path / "s1.h5", FEATS, COORDS, {}))
    with pytest.raises(OSError, match="disk full"):
        w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.h5"]


def test_pt_mirror_bytes_do_not_depend_on_the_temporary_name(tmp_path):
    from mstar.features.writer import write_pt_file

    write_pt_file(tmp_path / "a" / "s.pt", FEATS)
    write_pt_file(tmp_path / "b" / "s.pt", FEATS)
    assert (tmp_path / "a" / "s.pt").read_bytes() == (tmp_path / "b" / "s.pt").read_bytes()
