"""Two CPU ranks (gloo) with gathered embeddings reproduce the single-process stage-1 loss and gradients.

Convention under test (see ``mstar.pretrain.distributed``): every rank computes the global-batch loss, the
gather's backward sums gradients over ranks, so a rank's embedding gradient is ``W ×`` the single-process
one and DDP-style averaging of parameter gradients gives the single-process parameter gradient exactly.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mstar.pretrain.distributed import gather_no_grad, gather_with_grad, get_rank, get_world_size
from mstar.pretrain.losses import stage1_loss

WORLD = 2
SHARDS = [(0, 5), (5, 8)]  # uneven on purpose: 5 rows on rank 0, 3 on rank 1


def _global_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "x_slide": torch.randn(8, 6, generator=g),  # inputs of a tiny "slide encoder"
        "z_report": torch.randn(8, 4, generator=g),
        "z_gene": torch.randn(8, 4, generator=g),
        "has_report": torch.tensor([True, True, False, True, True, True, False, True]),
        "has_gene": torch.tensor([True, False, True, True, False, True, True, True]),
        "labels": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
    }


def _encoder() -> torch.nn.Linear:
    torch.manual_seed(7)
    return torch.nn.Linear(6, 4)


def _loss(lin, batch, gather):
    z_slide = gather(lin(batch["x_slide"]))
    z_report, z_gene = gather(batch["z_report"]), gather(batch["z_gene"])
    flags = [gather_no_grad(batch[k]) for k in ("has_report", "has_gene", "labels")]  # identity in 1 process
    return stage1_loss(z_slide, z_report, z_gene, *flags, logit_scale=torch.tensor(10.0))


def _identity(x):
    return x


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        lo, hi = SHARDS[rank]
        batch = {k: v[lo:hi].clone() for k, v in _global_batch().items()}
        batch["z_report"].requires_grad_(True)
        batch["z_gene"].requires_grad_(True)
        lin = _encoder()
        out = _loss(lin, batch, gather_with_grad)
        out["loss"].backward()
        grads = [p.grad for p in lin.parameters()]
        for g in grads:  # what DDP does: average parameter gradients over ranks
            dist.all_reduce(g)
            g /= WORLD
        torch.save({"rank": get_rank(), "world": get_world_size(),
                    "terms": {k: v.detach() for k, v in out.items()},
                    "g_report": batch["z_report"].grad, "g_gene": batch["z_gene"].grad,
                    "g_params": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned interpreters import torch (~10 s on 2 busy cores)
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_ranks_match_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    batch = _global_batch()
    batch["z_report"].requires_grad_(True)
    batch["z_gene"].requires_grad_(True)
    lin = _encoder()
    single = _loss(lin, batch, _identity)
    single["loss"].backward()
    assert single["slide_report"] > 0 and single["triplet"] > 0 and single["n_report_gene"].item() == 4

    for got in ranks:
        assert got["world"] == WORLD
        for name, value in single.items():  # every rank holds the global loss and every named term
            torch.testing.assert_close(got["terms"][name], value.detach(), rtol=1e-5, atol=1e-6)
        for g, p in zip(got["g_params"], lin.parameters()):  # DDP mean == single-process gradient
            torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    for key, full in (("g_report", batch["z_report"].grad), ("g_gene", batch["z_gene"].grad)):
        gathered = torch.cat([got[key] for got in ranks])  # rank shards in order
        torch.testing.assert_close(gathered / WORLD, full, rtol=1e-5, atol=1e-6)
        assert (gathered[~batch["has_report" if key == "g_report" else "has_gene"]] == 0).all()


def test_gather_is_identity_without_a_process_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x and gather_no_grad(x) is x
    assert (get_rank(), get_world_size()) == (0, 1)
