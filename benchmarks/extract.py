"""Extraction speed, side by side on the same slide and coords, in one run.

(a) naive: the upstream loop (per-tile PIL read -> PIL resize -> ToTensor/Normalize -> fp32 forward,
    batch --naive-batch-size, one process);
(b) ours: ``mstar.features.extract_features`` (workers, batched tensor preprocessing, the precision's forward,
    writer: autocast on a GPU, bf16 weights and optionally a compiled graph on the CPU);
(c) ceiling: the encoder's forward alone on pre-made input tensors (same batch size and precision as b).

Prints tiles/s for each, b/a and b/c, and the agreement of b's features with a's (cosine per tile). The
slide is ``--slide``, else ``slides/CMU-1-Small-Region.svs`` of the shared data folder
(``$MSTAR_SHARED_DATA``, ``<repo>/shared/data`` or ``<repo>/../shared/data``). The commands of the
BENCHMARKS.md rows are given there; e.g.::

    python benchmarks/extract.py --encoder timm:vit_small_patch16_224 --batch-size 32 --max-tiles 64 \\
        --repeats 5
    python benchmarks/extract.py --encoder timm:vit_large_patch16_224 --precision bf16 --device cuda \\
        --batch-size 256 --workers 8 --max-tiles 0   # a GPU (bash benchmarks/gpu_check.sh records this)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _cli import run, shared_data
from mstar.errors import MstarError
from mstar.features.distributed import resolve_device
from mstar.features.encoders import create_encoder
from mstar.features.extract import default_workers, extract_features, load_slide_tiles
from mstar.features.forward import encoder_forward
from mstar.features.io import load_features
from mstar.features.precision import resolve_precision
from mstar.features.preprocess import preprocess_batch
from mstar.features.reference import naive_features
from mstar.slide.reader import open_slide
from mstar.slide.tiles_file import read_tiles, write_tiles
from mstar.slide.tiling import TileParams, tile_slide

SLIDE = "slides/CMU-1-Small-Region.svs"  # inside the shared data folder


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare_tiles(slide: Path, work: Path, max_tiles: int, target_mpp: float, tile_px: int, overlap_px: int,
                  min_tissue: float) -> Path:
    """Tile the slide into ``work/tiles`` and keep the first ``max_tiles`` tiles (0: all)."""
    tile_slide(slide, work, TileParams(target_mpp=target_mpp, tile_px=tile_px, overlap_px=overlap_px,
                                       min_tissue=min_tissue))
    tf = work / "tiles" / f"{slide.stem}.h5"
    coords, attrs = read_tiles(tf)
    if max_tiles and len(coords) > max_tiles:
        write_tiles(tf, coords[:max_tiles], np.ones(max_tiles, np.float32), attrs)
    return tf


def run_naive(t, enc, batch_size: int, device: torch.device) -> tuple[float, np.ndarray]:
    _sync(device)
    start = time.perf_counter()
    feats = naive_features(t.slide_path, t.coords, t.read_level, t.read_px, enc.model, enc.preprocess,
                           batch_size=batch_size, mpp=t.mpp, device=device)
    _sync(device)
    return time.perf_counter() - start, feats


def run_ours(work: Path, enc, args, device: torch.device) -> tuple[float, np.ndarray]:
    shutil.rmtree(work / "features", ignore_errors=True)
    _sync(device)
    start = time.perf_counter()
    extract_features(work, enc, batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                     device=str(device), threads=args.threads, preprocess_on=args.preprocess_on,
                     show_progress=False, compile_mode=args.compile)
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, load_features(next((work / "features").rglob("*.h5")))[0]


def run_forward_only(inputs: list[torch.Tensor], enc, args, device: torch.device) -> float:
    """(c): ours's forward (same precision, weights and compiled graph as b) on ready input tensors."""
    tiles = sum(len(x) for x in inputs)
    forward = encoder_forward(enc, device, args.precision, args.compile, tiles, args.batch_size)
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for x in inputs:
            y = forward(x)
    _sync(device)
    del y
    return time.perf_counter() - start


def stage_costs(t, enc, batch_size: int) -> dict[str, float]:
    """Per-tile milliseconds of each stage, measured alone (best of 3) on the benchmark's tiles."""
    from mstar.features.reference import _pil_reader, naive_transform

    def best_ms(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / len(t.coords) * 1e3

    coords = [(int(x), int(y)) for x, y in t.coords]
    out = {}
    with open_slide(t.slide_path, mpp=t.mpp) as slide:
        out["read (ours: Slide.read_region)"] = best_ms(
            lambda: [slide.read_region(x, y, t.read_level, t.read_px) for x, y in coords])
        raw = torch.from_numpy(np.stack([slide.read_region(x, y, t.read_level, t.read_px)
                                         for x, y in coords]))  # (N, H, W, 3)
    read, close = _pil_reader(t.slide_path, t.mpp)
    out["read (upstream: PIL read_region + convert)"] = best_ms(
        lambda: [read(x, y, t.read_level, t.read_px) for x, y in coords])
    pil = [read(x, y, t.read_level, t.read_px) for x, y in coords]
    close()
    transform = naive_transform(enc.preprocess)
    out["preprocess (upstream: per-tile PIL Resize/ToTensor/Normalize)"] = best_ms(
        lambda: [transform(im) for im in pil])
    starts = range(0, len(raw), batch_size)
    out[f"preprocess (ours: batched uint8 resize + normalise, batch {batch_size})"] = best_ms(
        lambda: [preprocess_batch(raw[i:i + batch_size], enc.preprocess) for i in starts])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slide", type=Path, default=None,
                    help=f"slide to tile (default: {SLIDE} of the shared data folder)")
    ap.add_argument("--encoder", default="timm:vit_small_patch16_224")
    ap.add_argument("--checkpoint", type=Path, default=None, help="local encoder weights (default: random)")
    ap.add_argument("--batch-size", type=int, default=32, help="(b) and (c) tiles per forward")
    ap.add_argument("--naive-batch-size", type=int, default=32, help="(a) tiles per forward")
    ap.add_argument("--workers", type=int, default=None, help="(b) DataLoader workers (default: extract's)")
    ap.add_argument("--threads", type=int, default=None, help="(b) torch threads (default: torch's)")
    ap.add_argument("--precision", default=None, help="fp32/bf16/fp16 for (b) and (c); (a) is always fp32")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                    help="(b) and (c): torch.compile the encoder (compiled once, in the warm-up round)")
    ap.add_argument("--preprocess-on", default="auto", choices=["auto", "worker", "device"],
                    help="(b): where the batched resize + normalise runs")
    ap.add_argument("--max-tiles", type=int, default=64, help="0: every tissue tile of the slide")
    ap.add_argument("--target-mpp", type=float, default=0.5, help="tiling resolution, µm/px")
    ap.add_argument("--tile-px", type=int, default=256, help="tile side at --target-mpp")
    ap.add_argument("--overlap-px", type=int, default=0, help="more coords on a small slide")
    ap.add_argument("--min-tissue", type=float, default=0.0, help="0: every grid tile of the slide")
    ap.add_argument("--repeats", type=int, default=3, help="timed a/b/c rounds (medians)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed a/b/c rounds first")
    args = ap.parse_args()
    for name in ("repeats", "batch_size", "naive_batch_size"):
        if getattr(args, name) < 1:
            raise MstarError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected at least 1")
    if args.warmup < 0 or args.max_tiles < 0:
        raise MstarError("--warmup and --max-tiles: expected 0 or more")
    args.slide = shared_data(SLIDE, args.slide, "--slide")

    device = resolve_device(args.device)
    enc = create_encoder(args.encoder, args.checkpoint, random_init=True)
    args.precision = resolve_precision(args.precision, enc, device)
    args.workers = default_workers(device) if args.workers is None else args.workers
    enc.model.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tf = prepare_tiles(args.slide, work, args.max_tiles, args.target_mpp, args.tile_px, args.overlap_px,
                           args.min_tissue)
        t = load_slide_tiles(tf)
        n = len(t.coords)
        with open_slide(t.slide_path, mpp=t.mpp) as slide:
            raw = torch.from_numpy(np.stack([slide.read_region(x, y, t.read_level, t.read_px)
                                             for x, y in t.coords]))  # (N, H, W, 3)
        inputs = [preprocess_batch(raw[i:i + args.batch_size], enc.preprocess).to(device)
                  for i in range(0, n, args.batch_size)]  # (B, 3, S, S) each
        warm_b = float("nan")
        load = os.getloadavg()[0]
        times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
        # extract_features's (hidden) progress display still writes empty lines: keep them off the output
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(args.warmup):
                run_naive(t, enc, args.naive_batch_size, device)
                warm_b = run_ours(work, enc, args, device)[0]
                run_forward_only(inputs, enc, args, device)
            load = os.getloadavg()[0]
            for _ in range(args.repeats):
                sa, feats_a = run_naive(t, enc, args.naive_batch_size, device)
                sb, feats_b = run_ours(work, enc, args, device)
                sc = run_forward_only(inputs, enc, args, device)
                times["a"].append(sa)
                times["b"].append(sb)
                times["c"].append(sc)
        rate = {k: n / statistics.median(v) for k, v in times.items()}
        best = {k: n / min(v) for k, v in times.items()}
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(feats_a), torch.from_numpy(feats_b))
        threads = torch.get_num_threads()
        forward = encoder_forward(enc, device, args.precision, args.compile, n, args.batch_size)
        omp = os.environ.get("OMP_WAIT_POLICY", "default")
        print(f"slide {args.slide.name}: {n} tiles (overlap {args.overlap_px} px), read {t.read_px} px at "
              f"level {t.read_level} -> {enc.preprocess.input_px} px; encoder {enc.name} ({enc.dim}-d); "
              f"device {device} ({threads} torch threads, load avg {load:.2f} -> {os.getloadavg()[0]:.2f}); "
              f"precision (b,c) {args.precision}; batch {args.batch_size} (naive {args.naive_batch_size}); "
              f"workers {args.workers}; (b) threads {args.threads or threads}; OMP_WAIT_POLICY={omp}; "
              f"repeats {args.repeats} (+{args.warmup} warm-up; first (b) {warm_b:.1f} s, compilation "
              f"included); forward: {forward.mode}")
        names = {"a": "(a) naive upstream loop ", "b": "(b) mstar extract       ",
                 "c": "(c) forward-only ceiling"}
        for k, label in names.items():
            print(f"{label}: median {rate[k]:8.2f} tiles/s ({1e3 / rate[k]:6.1f} ms/tile)   "
                  f"best {best[k]:8.2f} tiles/s")
        print(f"median: b/a = {rate['b'] / rate['a']:.2f}x  b/c = {rate['b'] / rate['c']:.2f}   "
              f"best: b/a = {best['b'] / best['a']:.2f}x  b/c = {best['b'] / best['c']:.2f}   "
              f"cosine(a, b) min {cos.min():.5f} mean {cos.mean():.5f}")
        if device.type == "cpu":
            for name, ms in stage_costs(t, enc, args.batch_size).items():
                print(f"  stage {name}: {ms:.2f} ms/tile")
            print(f"  stage forward ({args.precision}, batch {args.batch_size}): "
                  f"{1e3 / rate['c']:.2f} ms/tile (= c)")
        print("raw seconds: " + ", ".join(f"{k}={[round(s, 2) for s in v]}" for k, v in times.items()))


if __name__ == "__main__":
    run(main)
