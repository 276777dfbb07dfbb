"""Two gloo ranks running the real stage-1 step on their sampler shards reproduce one process on the global
batch.

This covers what ``test_distributed.py`` does not: the :class:`EpochSampler` sharding (rank r takes every
W-th item of the same order), the stage-1 model's three branches and :func:`stage1_step`'s gathering.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD, LOCAL = 2, 4


def _setup(root: str):
    import lightning as L

    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_train import _load, build_model
    from tests.pretrain._cohort import TINY

    torch.set_num_threads(1)
    root = Path(root)
    cfg = Stage1Config(manifest=str(root / "manifest.csv"), features=str(root / "features"),
                       reports=str(root / "reports.json"), rna=str(root / "rna.csv"), **TINY)
    cohort = _load(cfg)
    L.seed_everything(0, verbose=False)
    model = build_model(cfg, cohort).eval()  # no dropout: both sides compute the same function
    return model, Stage1Dataset(cohort.bags, cohort.splits["train"], cfg.max_patches, train=True, seed=0)


def _step(model, data, rank: int, world: int, size: int) -> dict:
    from mstar.pretrain.stage1_data import EpochSampler, collate_stage1
    from mstar.pretrain.stage1_module import stage1_step

    sampler = EpochSampler(len(data), seed=0, rank=rank, world=world)
    sampler.set_epoch(1)
    batch = collate_stage1([data[key] for key in list(sampler)[:size]])
    out = stage1_step(model, batch)
    out["loss"].backward()
    return {"terms": {k: v.detach() for k, v in out.items()}, "slides": batch["slides"],
            "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}}


def _worker(rank: int, port: int, root: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model, data = _setup(root)
        got = _step(model, data, rank, WORLD, LOCAL)
        for g in got["grads"].values():  # what DDP does with parameter gradients
            dist.all_reduce(g)
            g /= WORLD
        torch.save(got, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned interpreters load torch, Lightning and the text encoder
                   # (~20-75 s on 2 busy cores)
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_ranks_of_the_stage1_step_equal_one_process_with_the_global_batch(tmp_path):
    from tests.pretrain._cohort import stage1_cohort

    stage1_cohort(tmp_path / "cohort", n_cases=30)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path / "cohort"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    model, data = _setup(str(tmp_path / "cohort"))
    single = _step(model, data, 0, 1, WORLD * LOCAL)
    assert sorted(ranks[0]["slides"] + ranks[1]["slides"]) == sorted(single["slides"])  # same global batch
    assert single["terms"]["n_slide_report"] >= 2 and single["terms"]["triplet"] > 0
    for got in ranks:
        for name, value in single["terms"].items():
            torch.testing.assert_close(got["terms"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert got["grads"].keys() == single["grads"].keys()
        for name, g in single["grads"].items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
