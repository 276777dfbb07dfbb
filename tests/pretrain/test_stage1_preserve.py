"""The pooled-feature ("preserve") term of stage 1: its value, where its head lives, and what it keeps."""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from mstar.pretrain.stage1_config import Stage1Config
from mstar.pretrain.stage1_module import PooledFeatureHead
from mstar.pretrain.stage1_train import pretrain
from tests.pretrain._cohort import TINY, stage1_cohort


def test_preserve_loss_is_the_mse_of_the_standardised_pooled_features_over_present_slides():
    torch.manual_seed(0)
    head = PooledFeatureHead(4, 3, mean=torch.tensor([1.0, 0.0, -1.0]), std=torch.tensor([2.0, 1.0, 0.5]))
    z = torch.randn(3, 4)
    x = torch.randn(3, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    has_slide = torch.tensor([True, True, False])
    pooled = torch.stack([x[0, :3].mean(0), x[1].mean(0)])
    target = (pooled - head.mean) / head.std
    want = F.mse_loss(head.linear(F.normalize(z[:2], dim=-1)), target)
    torch.testing.assert_close(head.loss(z, x, mask, has_slide), want)
    none = head.loss(z, x, mask, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad  # still tied to the parameters (DDP)


def test_the_head_trains_with_the_module_but_the_saved_model_keeps_upstreams_layout(tmp_path):
    paths = stage1_cohort(tmp_path / "cohort")
    cfg = Stage1Config(manifest=str(paths["manifest"]), features=str(paths["features"]),
                       reports=str(paths["reports"]), rna=str(paths["rna"]), out=str(tmp_path / "runs"),
                       epochs=3, preserve_weight=1.0, name="keep", **TINY)
    run = pretrain(cfg, progress=False)
    log = pd.read_csv(f"{run['run']}/log.csv")
    assert (log["train_preserve"] > 0).all()
    assert log["train_preserve"].iloc[-1] < log["train_preserve"].iloc[0]  # it learns to read them back
    sd = torch.load(run["checkpoint"], map_location="cpu", weights_only=True)["model_state_dict"]
    assert not any("preserve" in k or k.startswith("linear") for k in sd)
    lightning = torch.load(f"{run['run']}/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert {"preserve.linear.weight", "preserve.mean", "preserve.std"} <= set(lightning["state_dict"])
