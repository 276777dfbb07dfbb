"""One prepared GPU check: every speed figure BENCHMARKS.md wants from a CUDA machine, in one run.

Measures, each side by side with its baseline where one exists:

1. extraction: ViT-L/16 (random weights; speed does not depend on them) on a real slide's tiles, ours
   (`extract_features`, `--precision auto` = bf16, workers, batched preprocessing) vs the upstream loop (per
   tile PIL + torchvision, fp32) vs the forward alone on ready tensors (the ceiling); tiles/s, ratios, and
   the cosine of our features to the fp32 loop's;
2. MIL training: one ABMIL epoch on 1,024-d bags, ours (`mstar train classify`: RAM cache, padded batches,
   bf16) vs the upstream loop (one bag per step, `.pt` re-read every epoch, fp32);
3. a stage-1 step at 16 slides x 4,096 patches x 1,024-d (slides/s, peak GPU memory), ours (batched, masks)
   vs the looped upstream path;
4. a stage-2 step with a ViT-L/16 student + EMA teacher (patches/s, peak GPU memory);
5. a 1-GPU DDP run of stage 1 (`torchrun --nproc_per_node 1`): the distributed path starts, trains, and
   writes its checkpoint.

Writes ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (the table for BENCHMARKS.md) after every check,
so a run cut short keeps what it measured. A check that fails is recorded (``{"error": ...}``, "FAILED" in
the table) and the next one runs; the exit status is then 1. Without CUDA it stops at once with exit status
2 and one line saying so. ``--smoke`` runs every step at toy sizes on any device (CPU included), which is
how the tests check this script without a GPU. The slide is ``slides/CMU-1-Small-Region.svs`` of the shared
data folder (``$MSTAR_SHARED_DATA``, ``<repo>/shared/data``, ``<repo>/../shared/data``), else a synthetic
one (said on the output and recorded as ``extract.slide``).

    bash benchmarks/gpu_check.sh            # OUT=gpu_check_out by default; about 5 minutes on an H100
    python benchmarks/gpu_check.py --smoke --device cpu --out /tmp/gpu_smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmark scripts are reused, not copied
from _cli import run, shared_data  # noqa: E402
from mstar.errors import MstarError  # noqa: E402

CHECKS = ("extract", "mil", "stage1", "stage2", "ddp")

FULL = {"encoder": "timm:vit_large_patch16_224", "tiles": 1024, "naive_tiles": 256, "batch": 256,
        "mil_bags": 200, "mil_patches": 4000, "mil_dim": 1024, "s1_slides": 16, "s1_patches": 4096,
        "s1_dim": 1024, "s1_genes": 2000, "s2_batch": 64, "steps": 3, "ddp_cases": 48}
SMOKE = {"encoder": "timm:test_vit", "tiles": 24, "naive_tiles": 8, "batch": 8, "mil_bags": 12,
         "mil_patches": 32, "mil_dim": 16, "s1_slides": 2, "s1_patches": 32, "s1_dim": 16, "s1_genes": 32,
         "s2_batch": 4, "steps": 1, "ddp_cases": 12}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _slide(work: Path) -> tuple[Path, str]:
    """The real CMU slide of the shared data folder, else one synthetic slide made here (said on stdout);
    and which of the two it is."""
    try:
        return shared_data("slides/CMU-1-Small-Region.svs"), "CMU-1-Small-Region.svs (real)"
    except MstarError as exc:
        print(f"extract: {exc}; using a synthetic slide instead", flush=True)
    from mstar.data.synthetic import SynthConfig, make_cohort

    make_cohort(work / "cohort", SynthConfig(cases=3, seed=0), workers=1, show_progress=False)
    slide = sorted((work / "cohort" / "slides").glob("*.svs"))[0]
    return slide, f"{slide.name} (synthetic: the real slide was not found)"


def check_extract(device: torch.device, size: dict, work: Path) -> dict:
    """Extraction: ours (auto precision) vs the upstream fp32 loop vs the forward-only ceiling."""
    import extract as bench
    from mstar.features.encoders import create_encoder
    from mstar.features.extract import default_workers, load_slide_tiles
    from mstar.features.precision import resolve_precision
    from mstar.features.preprocess import preprocess_batch
    from mstar.slide.reader import open_slide

    enc = create_encoder(size["encoder"], random_init=True)
    precision = resolve_precision("auto", enc, device)
    enc.model.to(device)
    slide, which = _slide(work)
    tf = bench.prepare_tiles(slide, work / "extract", size["tiles"], 0.5, 256, 192, 0.0)
    t = load_slide_tiles(tf)
    args = SimpleNamespace(batch_size=size["batch"], workers=default_workers(device), precision=precision,
                           device=str(device), threads=None, preprocess_on="auto", compile="auto")
    with open_slide(t.slide_path, mpp=t.mpp) as slide:
        raw = torch.from_numpy(np.stack([slide.read_region(x, y, t.read_level, t.read_px)
                                         for x, y in t.coords]))  # (N, H, W, 3)
    inputs = [preprocess_batch(raw[i:i + size["batch"]], enc.preprocess).to(device)
              for i in range(0, len(raw), size["batch"])]
    bench.run_ours(work / "extract", enc, args, device)  # warm-up
    s_ours, feats = bench.run_ours(work / "extract", enc, args, device)
    bench.run_forward_only(inputs[:1], enc, args, device)
    s_ceiling = bench.run_forward_only(inputs, enc, args, device)
    n, n_naive = len(t.coords), min(len(t.coords), size["naive_tiles"])
    sub = SimpleNamespace(**{**vars(t), "coords": t.coords[:n_naive]})
    s_naive, feats_naive = bench.run_naive(sub, enc, 32 if n_naive >= 32 else n_naive, device)
    a, b = torch.from_numpy(feats_naive).double(), torch.from_numpy(feats[:n_naive]).double()
    cos = torch.nn.functional.cosine_similarity(a, b)
    ours, naive, ceiling = n / s_ours, n_naive / s_naive, n / s_ceiling
    return {"encoder": enc.name, "precision": str(precision), "precision_choice": precision.note,
            "slide": which, "tiles": n, "ours_tiles_per_s": ours, "upstream_tiles_per_s": naive,
            "forward_tiles_per_s": ceiling, "ours_over_upstream": ours / naive,
            "ours_over_forward": ours / ceiling, "cosine_min": float(cos.min())}


def check_mil(device: torch.device, size: dict, work: Path) -> dict:
    """One MIL epoch: ours vs the upstream loop (s/epoch; the same bags)."""
    import mil_train as bench

    root = bench.make_bags(work / "mil", size["mil_bags"], size["mil_patches"], size["mil_dim"])
    up_s, up_auc = bench.upstream_loop(root, size["mil_dim"], 1)
    ours_s, load_s, auc = bench.ours(root, 2, 16, 1e-3, None)
    return {"bags": size["mil_bags"], "patches": size["mil_patches"], "dim": size["mil_dim"],
            "upstream_s_per_epoch": up_s, "ours_s_per_epoch": ours_s, "ours_over_upstream": up_s / ours_s,
            "ours_load_s": load_s}


def check_stage1(device: torch.device, size: dict) -> dict:
    """A stage-1 step at full batch: ours vs the looped path (slides/s, peak memory)."""
    import pretrain as bench

    out = {}
    for side in ("ours", "naive"):
        _peak_reset(device)
        args = SimpleNamespace(slides=size["s1_slides"], patches=size["s1_patches"], dim=size["s1_dim"],
                               genes=size["s1_genes"], steps=size["steps"], device=str(device), side=side)
        res = bench.run_side(args)
        out[side] = {"slides_per_s": size["s1_slides"] / res["s_per_step"], "s_per_step": res["s_per_step"],
                     "peak_gpu_mib": res.get("peak_gpu_mib"), "max_abs_diff": res["max_abs_diff"]}
    out["ours_over_naive"] = out["ours"]["slides_per_s"] / out["naive"]["slides_per_s"]
    out["shape"] = f"{size['s1_slides']} x {size['s1_patches']} x {size['s1_dim']}"
    return out


def check_stage2(device: torch.device, size: dict) -> dict:
    """A stage-2 step: student ViT + EMA teacher (patches/s, peak memory)."""
    import self_train as bench

    args = SimpleNamespace(encoder=size["encoder"], batch=size["s2_batch"], steps=size["steps"],
                           target_dim=512, device=str(device), ckpt=False)
    _peak_reset(device)
    res = bench.child_step(args)
    return {"encoder": size["encoder"], "batch": size["s2_batch"], "patches_per_s": res["patches_per_s"],
            "step_s": res["step_s"], "peak_gpu_mib": res.get("cuda_peak_mib")}


def check_ddp(device: torch.device, size: dict, work: Path) -> dict:
    """`mstar pretrain` under `torchrun --nproc_per_node 1`: starts, trains, writes its checkpoint."""
    from mstar.data.synthetic import SynthConfig, make_cohort

    cohort = work / "ddp_cohort"
    make_cohort(cohort, SynthConfig(cases=size["ddp_cases"], seed=0), workers=1, show_progress=False)
    import pandas as pd

    from mstar.tasks.multimodal_inputs import random_bags

    feats = work / "ddp_feats"

    manifest = pd.read_csv(cohort / "manifests" / "diagnosis.csv")
    slides = [s for ss in manifest["slide"] for s in str(ss).split(";")]
    random_bags(feats, slides, dim=64, patches=(16, 32))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m",
           "mstar.cli", "pretrain", "--manifest", str(cohort / "manifests" / "diagnosis.csv"), "--features",
           str(feats), "--reports", str(cohort / "reports.json"), "--out", str(work / "ddp_runs"),
           "--set", "epochs=1", "--set", f"accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
           "--set", "devices=1", "--set", "strategy=ddp"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    ckpts = sorted((work / "ddp_runs").rglob("stage1.pt"))  # in a temporary folder, gone after the run
    return {"ok": proc.returncode == 0 and bool(ckpts), "returncode": proc.returncode, "seconds": seconds,
            "checkpoint_written": bool(ckpts),
            "stderr_tail": [ln for ln in proc.stderr.strip().splitlines() if "Error" in ln][-3:]
            if proc.returncode else []}


def markdown(result: dict) -> str:
    """The table for BENCHMARKS.md: one row per check that ran ("FAILED" and its error for one that
    failed)."""
    e, m, s1, s2, d = (result.get(k, {}) for k in CHECKS)
    ours1, naive1 = s1.get("ours", {}), s1.get("naive", {})

    def num(block: dict, key: str, fmt: str = ".2f") -> str:
        value = block.get(key)
        return "n/a" if value is None else format(value, fmt)

    where = "1 GPU" if result.get("device_type", "cuda") == "cuda" else f"1 process, {result['device_type']}"
    rows = [("extraction, ours", f"{num(e, 'ours_tiles_per_s', '.1f')} tiles/s",
             f"{e.get('encoder')} {e.get('precision')}; {num(e, 'ours_over_upstream')}x the upstream fp32 "
             f"loop ({num(e, 'upstream_tiles_per_s', '.1f')} tiles/s); {num(e, 'ours_over_forward')} of the "
             f"forward-only ceiling ({num(e, 'forward_tiles_per_s', '.1f')}); cosine min "
             f"{num(e, 'cosine_min', '.4f')}"),
            ("MIL epoch, ours", f"{num(m, 'ours_s_per_epoch')} s",
             f"upstream loop {num(m, 'upstream_s_per_epoch')} s ({num(m, 'ours_over_upstream', '.1f')}x); "
             f"{m.get('bags')} bags x {m.get('patches')} x {m.get('dim')}"),
            ("stage-1 step, ours", f"{num(ours1, 'slides_per_s', '.1f')} slides/s",
             f"{s1.get('shape')}; looped {num(naive1, 'slides_per_s', '.1f')} slides/s; peak "
             f"{num(ours1, 'peak_gpu_mib', '.0f')} MiB"),
            ("stage-2 step", f"{num(s2, 'patches_per_s', '.1f')} patches/s",
             f"{s2.get('encoder')}, batch {s2.get('batch')}; peak {num(s2, 'peak_gpu_mib', '.0f')} MiB"),
            (f"stage-1 DDP, {where}", "ok" if d.get("ok") else "FAILED", f"{num(d, 'seconds', '.0f')} s")]
    lines = ["| check | figure | detail |", "|---|---|---|", f"| device | {result['device']} |  |"]
    for name, (label, figure, detail) in zip(CHECKS, rows):
        block = result.get(name)
        if block is None:  # not run (--only)
            continue
        if "error" in block:
            figure, detail = "FAILED", block["error"].replace("|", "/")
        lines.append(f"| {label} | {figure} | {detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check_out"),
                    help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or (with --smoke) cpu")
    ap.add_argument("--smoke", action="store_true", help="toy sizes on any device (tests the script)")
    ap.add_argument("--only", nargs="*", choices=CHECKS, help="run only these checks")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU "
              "machine, or pass --smoke --device cpu to test the script", file=sys.stderr)
        return 2
    size = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
              or platform.machine(), "device_type": device.type, "torch": torch.__version__,
              "smoke": args.smoke, "sizes": size}
    checks = args.only or list(CHECKS)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in checks:
            t0 = time.perf_counter()
            try:
                if name == "extract":
                    result[name] = check_extract(device, size, work)
                elif name == "mil":
                    result[name] = check_mil(device, size, work)
                elif name == "stage1":
                    result[name] = check_stage1(device, size)
                elif name == "stage2":
                    result[name] = check_stage2(device, size)
                else:
                    result[name] = check_ddp(device, size, work)
            except Exception as exc:  # noqa: BLE001 - recorded; the other checks still run
                result[name] = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            result[name]["check_seconds"] = round(time.perf_counter() - t0, 1)
            result["seconds"] = round(time.perf_counter() - start, 1)
            print(f"{name}: {json.dumps(result[name], default=float)[:300]}", flush=True)
            write(args.out, result)
    print(markdown(result))
    failed = [n for n in checks if "error" in result[n] or (n == "ddp" and not result[n].get("ok"))]
    if failed:
        print(f"gpu_check: failed: {' '.join(failed)} (see {args.out / 'gpu_check.json'})", file=sys.stderr)
    return 1 if failed else 0


def write(out: Path, result: dict) -> None:
    """gpu_check.json and gpu_check.md as they stand (after every check)."""
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "gpu_check.md").write_text(markdown(result))


if __name__ == "__main__":
    run(main)
