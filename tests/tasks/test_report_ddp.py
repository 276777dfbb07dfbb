"""Report training under DDP: each rank a share of every epoch's slides; two CPU ranks (torchrun, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from mstar.tasks.report_train import ShuffledBatches
from tests.tasks._bags import report_cohort


def _epochs(n: int, batch: int, rank: int, world: int, epochs: int = 2) -> list[list[list[int]]]:
    sampler = ShuffledBatches(n, batch, torch.Generator().manual_seed(3), rank, world)
    return [list(sampler) for _ in range(epochs)]


def test_one_process_takes_consecutive_chunks_of_one_permutation_per_epoch():
    g = torch.Generator().manual_seed(3)
    expected = []
    for _ in range(2):
        order = torch.randperm(10, generator=g).tolist()
        expected.append([order[0:4], order[4:8], order[8:10]])
    assert _epochs(10, 4, 0, 1) == expected  # the order a single-process run has always had
    assert len(ShuffledBatches(10, 4, torch.Generator(), 0, 1)) == 3


@pytest.mark.parametrize("n, batch, world", [(10, 2, 2), (11, 2, 2), (7, 3, 3), (2, 4, 3)])
def test_ranks_share_each_epoch_evenly_and_together_see_every_slide(n, batch, world):
    ranks = [_epochs(n, batch, r, world) for r in range(world)]
    g = torch.Generator().manual_seed(3)
    for epoch in range(2):
        order = torch.randperm(n, generator=g).tolist()
        steps = {len(r[epoch]) for r in ranks}
        assert steps == {len(ShuffledBatches(n, batch, g, 0, world))}  # every rank the same steps
        seen = [i for r in ranks for b in r[epoch] for i in b]
        assert set(seen) == set(range(n)) and len(seen) == -(-n // world) * world  # padded by wrapping
        # step s of rank r holds positions r, r + W, ... of the shared permutation: the ranks' batches of a
        # step together are one process's batch of W·b
        interleaved = [ranks[r][epoch][s][j] for s in range(len(ranks[0][epoch]))
                       for j in range(len(ranks[0][epoch][s])) for r in range(world)]
        assert interleaved == (order * 2)[:len(interleaved)]


@pytest.mark.slow
def test_two_cpu_ranks_under_torchrun_train_and_rank_0_writes_the_run(tmp_path):
    rows, reports = report_cohort(tmp_path, 57)  # odd splits: uneven validation shares, wrapped training
    model = {"d_model": 32, "d_ff": 64, "n_heads": 4, "d_vf": 64, "cmm_size": 64, "cmm_dim": 32, "topk": 16,
             "prototype_num": 16, "region_size": 16, "num_layers": 1, "encoder_layers": 1, "max_len": 48}
    entry = tmp_path / "mstar_main.py"
    entry.write_text("from mstar.cli import main\nmain()\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(entry),
           "train", "report", "--manifest", str(tmp_path / "manifest.csv"), "--features",
           str(tmp_path / "features"), "--reports", str(tmp_path / "reports.json"), "--out", str(tmp_path),
           "--epochs", "2", "--set", "batch_size=4", "--set", "devices=2", "--set", "accelerator=cpu",
           "--set", "strategy=ddp", "--set", "beam_size=1", "--set", "bootstrap=0", "--set", "meteor=false",
           "--set", "min_freq=2", "--set", f"model_args={json.dumps(model)}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-6000:] + proc.stdout[-3000:]
    run = tmp_path / "report" / "manifest-histgen"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and json.loads((run / "run.json").read_text())["status"] == "finished"
    log = pd.read_csv(run / "log.csv")
    assert log["epoch"].tolist() == [1, 2] and np.isfinite(log["train_loss"]).all()
    split = {r["slide"]: r["fold"] for r in rows if r["slide"] in reports}
    n_val = sum(f == "val" for f in split.values())
    assert n_val % 2 == 1 and sum(f == "train" for f in split.values()) % 2 == 1
    assert (log["val_reports"] == n_val).all()  # both ranks' (uneven) shares of the validation reports
    assert log["val_bleu_4"].notna().all()
    predictions = pd.read_csv(run / "predictions.csv")
    for part in ("val", "test"):  # rank 0 generated every held-out slide once
        assert sorted(predictions.loc[predictions["split"] == part, "slide"]) == sorted(
            s for s, f in split.items() if f == part)
    assert not (run / "checkpoints" / "last.ckpt").exists()


def test_only_auto_or_ddp_and_as_many_devices_as_the_launcher_started(monkeypatch):
    from mstar.errors import MstarError
    from mstar.tasks.report_config import ReportConfig

    def cfg(**kw):
        return ReportConfig(manifest="m.csv", features="f", reports="r.json", **kw)

    with pytest.raises(MstarError, match="report training runs with auto or ddp, got 'ddp_spawn'"):
        cfg(devices=2, strategy="ddp_spawn").validate()
    assert cfg(devices=2).training_settings().strategy == "ddp"  # never forked ranks (notebooks)
    assert cfg(devices=1).training_settings().strategy == "auto"
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun --nproc_per_node=2
    with pytest.raises(MstarError, match=r"devices': 1, but the launcher started 2 processes"):
        cfg(devices=1).validate()
    cfg(devices=2).validate()
