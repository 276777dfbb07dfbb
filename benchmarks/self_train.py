"""Stage-2 training speed and memory, side by side in one run: gradient checkpointing on vs off, and our
patch data path vs a naive per-patch PIL loop.

    python benchmarks/self_train.py                       # ViT-S/16 on CPU (fp32), synthetic slides
    python benchmarks/self_train.py --encoder mstar-vitl16 --batch 64 --device cuda   # ViT-L on a GPU (bf16)

(1) Training step = what :class:`~mstar.selftrain.module.SelfTrainModule` does per step: student forward +
backward, EMA forward, loss, AdamW step, EMA update; random init (speed does not depend on weights), a
random stage-1 aggregator's projection, random targets. Each setting runs in a fresh subprocess so that
its peak resident memory (``ru_maxrss``) is its own; reported: patches/s (median of the timed steps), peak
RSS, activation memory saved for backward (exact bytes through ``saved_tensors_hooks``) and, on CUDA,
``max_memory_allocated``.

(2) Data path, same patches: ours (:class:`~mstar.selftrain.data.PatchSteps`: read, one batched uint8 resize
to the encoder input, batched affine colour jitter, normalisation) vs naive (per patch: OpenSlide
``read_region``, PIL ``convert``, torchvision ``RandomHorizontalFlip``/``ColorJitter``/``Resize``/\
``ToTensor``/
``Normalize``); both keep one open handle per slide.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _cli import run, run_child
from mstar.errors import MstarError


def _synthetic_work(folder: Path, cases: int) -> Path:
    from mstar.data.synthetic import SynthConfig, make_cohort
    from mstar.slide.batch import tile_many

    make_cohort(folder / "cohort", SynthConfig(cases=cases, seed=0), workers=1, show_progress=False)
    tile_many([folder / "cohort" / "slides"], folder / "work", show_progress=False)
    return folder / "work"


def _slides(work: Path):
    from mstar.features.extract import load_slide_tiles
    from mstar.selftrain.cohort import SelfTrainSlide, tiles_folder

    out = []
    for tf in sorted(tiles_folder(work).glob("*.h5")):
        t = load_slide_tiles(tf)
        out.append(SelfTrainSlide(t.slide_id, t.slide_path, t.coords, t.read_level, t.read_px, t.mpp, tf, tf,
                                  t.attrs))
    return out


def child_step(args) -> dict:
    """One training-step setting (runs in its own process)."""
    from mstar.features.encoders import create_encoder
    from mstar.selftrain.ema import EMA
    from mstar.selftrain.loss import self_train_loss
    from mstar.selftrain.student import Student

    torch.manual_seed(0)
    device = torch.device(args.device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    enc = create_encoder(args.encoder, random_init=True)
    dim = enc.dim
    backbone = enc.model.train().requires_grad_(True)
    backbone.set_grad_checkpointing(args.ckpt)
    student = Student(backbone, torch.nn.Linear(dim, args.target_dim).requires_grad_(False)).to(device)
    ema = EMA(student.backbone).to(device)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
    s = enc.preprocess.input_px
    x = torch.randn(args.batch, 3, s, s, device=device)
    t = torch.randn(args.batch, args.target_dim, device=device)
    bf16 = device.type == "cuda"
    saved = {"bytes": 0}

    def pack(tensor):
        saved["bytes"] += tensor.numel() * tensor.element_size()
        return tensor

    times, act = [], 0
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        saved["bytes"] = 0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                f, z = student(x)
            fe = ema(x)
            loss = self_train_loss(z, t, f, fe)["loss"]
        act = max(act, saved["bytes"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(student.backbone, 0.996)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"patches_per_s": args.batch / statistics.median(times), "step_s": statistics.median(times),
           "peak_rss_mib": rss / 1024, "rss_over_start_mib": (rss - base_rss) / 1024,
           "activations_mib": act / 2**20, "dim": dim}
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def data_path(work: Path, encoder: str, batch: int, steps: int) -> dict:
    """Patches/s of our data path and of the naive loop, on the same patches."""
    import numpy as np
    import openslide
    from torchvision import transforms

    from mstar.features.encoders import create_encoder
    from mstar.selftrain.augment import Augment
    from mstar.selftrain.data import PatchSteps, sample_step

    slides = _slides(work)
    prep = create_encoder(encoder, random_init=True).preprocess
    ours = PatchSteps(slides, 4, batch // 4, prep, Augment(), seed=0)
    ours[0]
    start = time.perf_counter()
    for k in range(1, steps + 1):
        ours[k]
    t_ours = (time.perf_counter() - start) / (steps * batch)
    naive = transforms.Compose([transforms.RandomHorizontalFlip(),
                                transforms.ColorJitter(0.1, 0.1, 0.1, 0.02),
                                transforms.Resize(prep.input_px), transforms.ToTensor(),
                                transforms.Normalize(prep.mean, prep.std)])
    handles: dict[int, openslide.OpenSlide] = {}
    start = time.perf_counter()
    for k in range(1, steps + 1):
        chosen, picks = sample_step(np.random.default_rng([0, 0, k]), [s.n for s in slides], 4, batch // 4)
        images = []
        for s, ps in zip(chosen, picks):
            t = slides[int(s)]
            if int(s) not in handles:
                handles[int(s)] = openslide.OpenSlide(t.slide_path)
            handle = handles[int(s)]
            for p in ps:
                x, y = t.coords[int(p)]
                tile = handle.read_region((int(x), int(y)), t.read_level,
                                          (t.read_px, t.read_px)).convert("RGB")
                images.append(naive(tile))
        torch.stack(images)
    t_naive = (time.perf_counter() - start) / (steps * batch)
    return {"ours_patches_per_s": 1 / t_ours, "naive_patches_per_s": 1 / t_naive, "speedup": t_naive / t_ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="timm:vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=32, help="patches per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--target-dim", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder with tiles/ (default: 3 synthetic cases)")
    parser.add_argument("--data-steps", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("batch", "steps", "target_dim", "data_steps"):
        if getattr(args, name) < 1:
            raise MstarError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected at least 1")
    if args.batch % 4:
        raise MstarError(f"--batch {args.batch}: expected a multiple of 4 (4 slides per step)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child_step(args)))
        return
    rows = {}
    for ckpt in (False, True):
        cmd = [sys.executable, __file__, "--child", "--encoder", args.encoder, "--batch", str(args.batch),
               "--steps", str(args.steps), "--target-dim", str(args.target_dim), "--device", args.device]
        cmd += ["--ckpt"] if ckpt else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        stdout = run_child(cmd, f"the {'checkpointing' if ckpt else 'plain'} training step's process")
        rows["checkpointing" if ckpt else "plain"] = json.loads(stdout.strip().splitlines()[-1])
    plain, ck = rows["plain"], rows["checkpointing"]
    print(f"training step, {args.encoder}, batch {args.batch}, {args.device} "
          f"({'bf16' if args.device.startswith('cuda') else 'fp32'}, {torch.get_num_threads()} threads)")
    for name, r in rows.items():
        extra = f", CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"  {name:14s} {r['patches_per_s']:7.2f} patches/s ({r['step_s']:.2f} s/step), "
              f"activations saved for backward {r['activations_mib']:8.1f} MiB, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB{extra}")
    print(f"  checkpointing/plain: speed x{ck['patches_per_s'] / plain['patches_per_s']:.2f}, activations "
          f"x{ck['activations_mib'] / plain['activations_mib']:.3f}, "
          f"peak RSS x{ck['peak_rss_mib'] / plain['peak_rss_mib']:.2f}"
          + (f", CUDA peak x{ck['cuda_peak_mib'] / plain['cuda_peak_mib']:.2f}"
             if "cuda_peak_mib" in ck else ""))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or _synthetic_work(Path(tmp), 3)
        d = data_path(work, args.encoder, args.batch, args.data_steps)
    print(f"data path (read + augment + preprocess, {args.data_steps} steps of {args.batch}): ours "
          f"{d['ours_patches_per_s']:.0f} patches/s, naive {d['naive_patches_per_s']:.0f} patches/s, "
          f"ours/naive x{d['speedup']:.2f}")


if __name__ == "__main__":
    run(main)
