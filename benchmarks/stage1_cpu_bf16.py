"""Stage 1 on the CPU: fp32 vs bf16 autocast per training step, by model width and patches per slide.

Side by side in one run (each size: fp32 then bf16 in the same process, one warm-up step, median of
``--steps``). The slide branch only (TransMIL aggregator + report projection, InfoNCE-like loss, AdamW), the
part whose cost grows with width and bag size; the figures decide `stage1_train.cpu_bf16_pays`.

    OMP_NUM_THREADS=2 python benchmarks/stage1_cpu_bf16.py --sizes 64x256 128x256 256x256 512x256 \\
        --features 64
    OMP_NUM_THREADS=2 python benchmarks/stage1_cpu_bf16.py --sizes 64x2048 256x2048 512x2048 --features 1024
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _cli import run
from mstar.errors import MstarError


def step_seconds(width: int, patches: int, features: int, bf16: bool, slides: int, steps: int) -> float:
    from mstar.pretrain.stage1_model import Stage1Model

    torch.manual_seed(0)
    x = torch.randn(slides, patches, features)  # (B, N, D)
    mask = torch.ones(slides, patches, dtype=torch.bool)  # (B, N)
    cls = torch.randn(slides, 768)  # cached report [CLS] vectors
    model = Stage1Model(features, width)
    proj_text = torch.nn.Linear(768, width)
    opt = torch.optim.AdamW([*model.parameters(), *proj_text.parameters()], lr=1e-4)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z_slide, z_report = model.encode_slide(x, mask), proj_text(cls)  # (B, W) each
        logits = z_slide.float() @ z_report.float().T  # (B, B)
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(slides))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["64x256", "512x256"], help="WIDTHxPATCHES")
    ap.add_argument("--features", type=int, default=64, help="patch feature width D")
    ap.add_argument("--slides", type=int, default=16, help="slides per step")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per size and precision (+1 warm-up)")
    args = ap.parse_args()
    sizes = []
    for size in args.sizes:
        parts = size.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise MstarError(f"--sizes {size}: expected WIDTHxPATCHES, e.g. 64x256")
        sizes.append((int(parts[0]), int(parts[1])))
    for name in ("features", "slides", "steps"):
        if getattr(args, name) < 1:
            raise MstarError(f"--{name} {getattr(args, name)}: expected at least 1")
    print(f"slide-branch step, {args.slides} slides, {args.features}-d features, {torch.get_num_threads()} "
          "torch threads")
    for width, patches in sizes:
        fp32 = step_seconds(width, patches, args.features, False, args.slides, args.steps)
        bf16 = step_seconds(width, patches, args.features, True, args.slides, args.steps)
        print(f"width {width:4d} x {patches:5d} patches: fp32 {fp32:7.3f} s, bf16 {bf16:7.3f} s, "
              f"bf16 speedup {fp32 / bf16:.2f}x", flush=True)


if __name__ == "__main__":
    run(main)
