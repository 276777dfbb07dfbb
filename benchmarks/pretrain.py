"""Stage-1 training step: our batched, masked slide branch vs a per-slide loop (upstream's batch-1 TransMIL).

Both sides run the same full stage-1 step on the same inputs: slide branch (``proj`` Linear(D→512) → TransMIL
512, 2 Nystrom layers + PPEG), report branch (frozen-BERT [CLS] vectors, cached as in our pretraining, →
``proj_text``), gene branch (scBERT-style Performer, the upstream-size guess: dim 200, depth 1, 10 heads ×
64), the masked InfoNCE terms + batch-hard triplet, backward and an AdamW step. The only difference is how
slides go through the aggregator:

- **ours**: ``model.encode_slide(x (B, N, D), mask)``, one call per batch (all bags full: one batched pass);
- **naive**: ``torch.cat([model.encode_slide(x[i:i+1]) for i in range(B)])``, one bag at a time.

Each side runs in its own fresh process (so peak memory is its own): peak resident memory above the
process's state after building the inputs (CPU) or ``torch.cuda.max_memory_allocated`` (GPU), and the
median seconds per step over ``--steps`` timed steps after one warm-up. The script also checks that both
sides give the same slide embeddings (eval mode) and prints the speed ratio.

    python benchmarks/pretrain.py --slides 16 --patches 4096 --dim 1024 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

from _cli import run, run_child
from mstar.errors import MstarError


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _inputs(slides: int, patches: int, dim: int, genes: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(slides, patches, dim, generator=g).to(device)  # (B, N, D)
    mask = torch.ones(slides, patches, dtype=torch.bool, device=device)  # (B, N)
    cls = torch.randn(slides, 768, generator=g).to(device)  # cached frozen-BERT [CLS] of each report
    values = torch.randn(slides, genes, generator=g).to(device)  # (B, G)
    labels = torch.arange(slides, device=device) % 4  # 4 cancer types
    has = torch.ones(slides, dtype=torch.bool, device=device)
    return x, mask, cls, values, labels, has


def _model(dim: int, genes: int, device: torch.device):
    from mstar.models.gene_encoder import GeneEncoder
    from mstar.pretrain.stage1_model import Stage1Model

    torch.manual_seed(0)
    gene = GeneEncoder([f"G{i}" for i in range(genes)], proj_dim=512, dim=200, depth=1, heads=10, dim_head=64)
    gene.fit(np.random.default_rng(0).normal(size=(64, genes)))
    model = Stage1Model(dim, 512, gene=gene).to(device)
    proj_text = torch.nn.Linear(768, 512).to(device)
    return model, proj_text


def _step(model, proj_text, opt, inputs, naive: bool, bf16: bool) -> float:
    from mstar.pretrain.losses import stage1_loss

    x, mask, cls, values, labels, has = inputs
    device = x.device
    start = time.perf_counter()
    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16
           else torch.autocast(device.type, enabled=False))
    with ctx:
        if naive:
            z_slide = torch.cat([model.encode_slide(x[i:i + 1]) for i in range(x.shape[0])])  # (B, 512)
        else:
            z_slide = model.encode_slide(x, mask)  # (B, 512)
        z_report = proj_text(cls)  # (B, 512)
        z_gene = model.encode_gene(values)  # (B, 512)
    out = stage1_loss(z_slide.float(), z_report.float(), z_gene.float(), has, has, labels,
                      model.logit_scale())
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_side(args) -> dict:
    """One side in this process: warm-up + timed steps; returns timings and peak memory."""
    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    inputs = _inputs(args.slides, args.patches, args.dim, args.genes, device)
    model, proj_text = _model(args.dim, args.genes, device)
    opt = torch.optim.AdamW([*model.parameters(), *proj_text.parameters()], lr=1e-4)
    base = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated() / 2**20
    naive = args.side == "naive"
    times = [_step(model, proj_text, opt, inputs, naive, bf16) for _ in range(args.steps + 1)][1:]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base  # ru_maxrss is KiB on Linux
    out = {"side": args.side, "s_per_step": float(np.median(times)), "times": times, "peak_mib": peak,
           "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20 - base_gpu
        out["gpu"] = torch.cuda.get_device_name()
    model.eval()
    with torch.no_grad():  # both paths compute the same embeddings
        k = min(4, args.slides)
        batched = model.encode_slide(inputs[0][:k], inputs[1][:k])
        looped = torch.cat([model.encode_slide(inputs[0][i:i + 1]) for i in range(k)])
        out["max_abs_diff"] = float((batched - looped).abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slides", type=int, default=16, help="batch size (slides per step)")
    parser.add_argument("--patches", type=int, default=4096, help="patches per slide")
    parser.add_argument("--dim", type=int, default=1024, help="patch feature width")
    parser.add_argument("--genes", type=int, default=2000, help="genes per RNA profile")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per side (after one warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--side", choices=("ours", "naive"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("slides", "patches", "dim", "genes", "steps"):
        if getattr(args, name) < 1:
            raise MstarError(f"--{name} {getattr(args, name)}: expected at least 1")
    if args.side:
        print(json.dumps(run_side(args)))
        return
    results = {}
    for side in ("ours", "naive"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--side", side]
        stdout = run_child(cmd, f"the {side} side's process")
        results[side] = json.loads(stdout.strip().splitlines()[-1])
    ours, naive = results["ours"], results["naive"]
    where = ours.get("gpu", f"CPU, {ours['threads']} threads")
    print(f"stage-1 step: {args.slides} slides x {args.patches} patches x {args.dim}-d, {args.genes} genes, "
          f"{where}{', bf16 autocast' if 'gpu' in ours else ', fp32'}")
    for r in (ours, naive):
        mem = f"peak +{r['peak_mib']:.0f} MiB RSS" + (f", +{r['peak_gpu_mib']:.0f} MiB GPU"
                                                        if "peak_gpu_mib" in r else "")
        label = "ours (batched, masked)" if r["side"] == "ours" else "naive (per-slide loop)"
        print(f"{label:26s} {r['s_per_step']:8.2f} s/step  "
              f"{args.slides / r['s_per_step']:7.2f} slides/s  {mem}"
              f"  (steps: {', '.join(f'{t:.2f}' for t in r['times'])})")
    print(f"speed ratio naive/ours: {naive['s_per_step'] / ours['s_per_step']:.2f}x   "
          f"max |batched - looped| slide embedding: {ours['max_abs_diff']:.2e}")


if __name__ == "__main__":
    run(main)
