"""An interrupted run resumes to exactly the uninterrupted result; two CPU ranks (torchrun, gloo) train."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightning as L
import pandas as pd
import pytest
import torch

from mstar.selftrain.config import SelfTrainConfig
from mstar.selftrain.train import self_train

from .conftest import ENCODER, FEATURES

TINY = dict(epochs=2, steps_per_epoch=3, slides_per_step=2, patches_per_slide=4, lr=1e-4,
            val_patches_per_slide=8, probe_slides=4, bootstrap=50)


class Crash(L.Callback):
    """Raises in the middle of the second epoch (after the first epoch's checkpoint)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            raise RuntimeError("simulated crash")


def _cfg(work, aggregator, out, **kw) -> SelfTrainConfig:
    """Settings of a run in ``<out>/selftrain/r``."""
    return SelfTrainConfig(tiles=str(work), features=str(work / "features" / FEATURES),
                           stage1=str(aggregator), encoder=ENCODER, out=str(out), name="r", **{**TINY, **kw})


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_uninterrupted_result(st_work, random_stage1, tmp_path):
    # targets=ema: the resumed epoch also recomputes its targets from the restored EMA encoder
    full = self_train(_cfg(st_work, random_stage1, tmp_path / "full", targets="ema"), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        self_train(_cfg(st_work, random_stage1, tmp_path / "cut", targets="ema"), progress=False,
                   callbacks=[Crash()])
    cut = tmp_path / "cut" / "selftrain" / "r"
    assert (cut / "checkpoints" / "last.ckpt").exists() and not (cut / "metrics.json").exists()
    resumed = self_train(_cfg(st_work, random_stage1, tmp_path / "cut", targets="ema"), progress=False)
    a = torch.load(full["encoder"], weights_only=True)
    b = torch.load(resumed["encoder"], weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = (pd.read_csv(tmp_path / r / "selftrain" / "r" / "log.csv").drop(columns=["train_seconds",
                                                                                             "val_seconds"])
                    for r in ("full", "cut"))
    pd.testing.assert_frame_equal(log_a, log_b)
    assert list(log_a["epoch"]) == [0, 1, 2] and list(log_a["step"]) == [0, 3, 6]
    assert resumed["metrics"] == full["metrics"]
    # a finished run is returned as it is; other inputs are refused
    again = self_train(_cfg(st_work, random_stage1, tmp_path / "cut", targets="ema"), progress=False)
    assert again["encoder"] == resumed["encoder"] and again["finished_before"]
    from mstar.errors import MstarError

    with pytest.raises(MstarError, match=r"other settings or inputs \(epochs 2 -> 3\)"):
        self_train(_cfg(st_work, random_stage1, tmp_path / "cut", targets="ema", epochs=3), progress=False)


@pytest.mark.slow
def test_two_cpu_ranks_under_torchrun(st_work, random_stage1, tmp_path):
    entry = tmp_path / "mstar_main.py"
    entry.write_text("import mstar.cli.selftrain\nfrom mstar.cli import main\nmain()\n")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(entry),
           "self-train", "--tiles", str(st_work), "--features", str(st_work / "features" / FEATURES),
           "--stage1", str(random_stage1), "--encoder", ENCODER, "--out", str(out), "--epochs", "1",
           "--steps-per-epoch", "2", "--slides-per-step", "2", "--patches-per-slide", "4", "--devices", "2",
           "--accelerator", "cpu", "--grad-checkpointing", "--precision", "bf16-mixed",
           "--set", "strategy=ddp", "--set", "val_patches_per_slide=8", "--set", "bootstrap=20"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = out / "selftrain" / "timm-test_vit-s2"
    meta = json.loads((out / "metrics.json").read_text())["_meta"]
    assert meta["world_size"] == 2 and meta["global_step"] == 2 and meta["grad_checkpointing"]
    assert meta["precision"] == "bf16-mixed"
    n_slides = len(list((st_work / "features" / FEATURES).glob("*.h5")))
    assert len(list((out / "targets").glob("*.npy"))) == n_slides  # both ranks' shards of the cache
    from mstar.features.encoders import create_encoder

    enc = create_encoder(meta["name"], meta["encoder"])  # strict load through the sidecar
    assert enc.dim == 64
