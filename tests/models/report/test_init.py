from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.init import init_from_stage1

TINY = dict(in_dim=12, d_model=16, d_ff=32, n_heads=2, num_layers=1, region_size=6, cmm_size=20, cmm_dim=16,
            topk=5, prototype_num=4)


def stage1_state(in_dim=12, out=8):
    torch.manual_seed(1)
    return {"module.proj.weight": torch.randn(out, in_dim), "module.proj.bias": torch.randn(out),
            "module.vision_encoder.cls_token": torch.randn(1, 1, out)}


def test_proj_becomes_the_wsi_mapping(tmp_path):
    model = ReportGenerator(20, d_vf=8, **TINY)
    state = stage1_state()
    path = tmp_path / "stage1.pt"
    torch.save({"model_state_dict": state}, path)
    assert init_from_stage1(model, path) == ["proj.weight", "proj.bias"]
    assert torch.equal(model.encoder.wsi_mapping.weight, state["module.proj.weight"])
    assert torch.equal(model.encoder.wsi_mapping.bias, state["module.proj.bias"])


def test_shape_mismatch_and_missing_proj_are_user_errors(tmp_path):
    model = ReportGenerator(20, d_vf=24, **TINY)
    with pytest.raises(MstarError, match="d_vf=8"):
        init_from_stage1(model, {"model_state_dict": stage1_state()})
    with pytest.raises(MstarError, match="no 'proj.weight'"):
        init_from_stage1(model, {"model_state_dict": {"vision_encoder.x": torch.zeros(1)}})
    with pytest.raises(MstarError, match="missing.pt does not exist"):
        init_from_stage1(model, tmp_path / "missing.pt")
