import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from mstar.errors import MstarError
from mstar.features.checkpoints import (
    SIDECAR_FORMAT,
    load_state_dict_file,
    load_strict,
    read_sidecar,
    save_encoder_checkpoint,
    sha256_file,
    sha256_weights,
)
from mstar.features.preprocess import PreprocessConfig


def _state():
    return {"a.weight": torch.arange(6.0).view(2, 3), "a.bias": torch.tensor([1.0, 2.0])}


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module."])
def test_load_pth_unwraps_common_containers(tmp_path, wrap):
    state = _state()
    obj = ({"module." + k: v for k, v in state.items()} if wrap == "module." else
           state if wrap == "plain" else {wrap: state, "epoch": 3})
    torch.save(obj, tmp_path / "w.pth")
    loaded = load_state_dict_file(tmp_path / "w.pth")
    assert sorted(loaded) == ["a.bias", "a.weight"]
    torch.testing.assert_close(loaded["a.weight"], state["a.weight"])


def test_load_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file(_state(), str(tmp_path / "w.safetensors"))
    loaded = load_state_dict_file(tmp_path / "w.safetensors")
    torch.testing.assert_close(loaded["a.bias"], torch.tensor([1.0, 2.0]))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(MstarError, match="checkpoint not found; check the --checkpoint"):
        load_state_dict_file(tmp_path / "missing.pth")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not a state_dict
    with pytest.raises(MstarError, match=r"module\.pth: cannot read this checkpoint \(it holds Python "
                                         r"objects besides tensors, which mstar does not unpickle") as err:
        load_state_dict_file(tmp_path / "module.pth")
    assert "weights_only" not in str(err.value)  # not torch's advice to unpickle an unknown file
    import h5py

    with h5py.File(tmp_path / "slide.h5", "w") as f:  # a features file given for weights
        f["features"] = np.zeros((2, 4), np.float32)
    with pytest.raises(MstarError, match=r"an HDF5 file \(tiles or features\?\), not a checkpoint"):
        load_state_dict_file(tmp_path / "slide.h5")
    torch.save(_state(), tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])  # an interrupted copy
    torch.save(_state(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "old_cut.pth").write_bytes((tmp_path / "old.pth").read_bytes()[:40])
    (tmp_path / "notes.pth").write_text("hello\n")  # not a checkpoint at all
    (tmp_path / "empty.pth").write_bytes(b"")
    from mstar.models.upstream import read_checkpoint

    damaged = "the file is incomplete or damaged"
    for name, said in (("cut.pth", f"{damaged} \\(a truncated copy\\?\\); copy it again"),
                       ("old_cut.pth", damaged), ("notes.pth", "not a PyTorch checkpoint"),
                       ("empty.pth", "the file is empty")):
        with pytest.raises(MstarError, match=f"{name}: cannot read this checkpoint \\({said}"):
            load_state_dict_file(tmp_path / name)
        with pytest.raises(MstarError, match=f"{name}: cannot read this checkpoint \\({said}"):
            read_checkpoint(tmp_path / name)  # --stage1 says the same
    torch.save({"model_state_dict": {"vision_encoder.cls_token": torch.zeros(1, 1, 4)}, "meta": {}},
               tmp_path / "stage1.pt")
    with pytest.raises(MstarError, match="stage1.pt: a stage-1 checkpoint .* it goes to --stage1"):
        load_state_dict_file(tmp_path / "stage1.pt")
    torch.save({"epoch": 1}, tmp_path / "nostate.pth")
    with pytest.raises(MstarError, match="not a state_dict"):
        load_state_dict_file(tmp_path / "nostate.pth")


def test_strict_load_reports_missing_unexpected_and_shapes():
    model = nn.Sequential(nn.Linear(3, 2))
    bad = {"0.weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    expected = r"1 missing \(0\.bias\); 1 unexpected \(extra\); 1 wrong shape \(0\.weight\)"
    with pytest.raises(MstarError, match=expected):
        load_strict(model, bad, "w.pth", "toy")
    good = {"0.weight": torch.ones(2, 3), "0.bias": torch.zeros(2)}
    load_strict(model, good, "w.pth", "toy")
    assert model[0].weight.sum().item() == 6.0


def test_hashes(tmp_path):
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()
    a, b = (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)) for _ in range(2))  # BN: a 0-d buffer too
    b.load_state_dict(a.state_dict())
    assert sha256_weights(a) == sha256_weights(b)
    with torch.no_grad():
        b[0].bias.add_(1)
    assert sha256_weights(a) != sha256_weights(b)


def test_stage2_format_round_trip(tmp_path):
    import timm

    model = timm.create_model("test_vit", pretrained=False, num_classes=0)
    prep = PreprocessConfig(160, (0.5,) * 3, (0.5,) * 3, 0.5, "bf16")
    path = save_encoder_checkpoint(model, tmp_path / "my-s2.safetensors", name="my-s2", timm_model="test_vit",
                                   timm_kwargs={"num_classes": 0}, preprocess=prep, parent="timm:test_vit")
    meta = json.loads((tmp_path / "my-s2.json").read_text())
    assert meta["format"] == SIDECAR_FORMAT and meta["name"] == "my-s2" and meta["timm_model"] == "test_vit"
    assert meta["dim"] == 64 and meta["sha256"] == sha256_file(path) and meta["preprocess"]["input_px"] == 160
    assert read_sidecar(path) == meta
    assert read_sidecar(tmp_path / "other.pth") is None
