"""Tiling speed per slide: `mstar tile` vs a naive per-tile loop, on the synthetic cohort and a real slide.

The naive baseline visits every grid position, reads the tile at full resolution and keeps it when its
saturation-based tissue fraction reaches the threshold (what simple pipelines do). Ours segments one
low-resolution image and scores all tiles from an integral image. Both use the same grid and threshold;
the script prints seconds per slide, the ratio, and the agreement (Jaccard) of the kept tile sets; ``n``
counts slides (a synthetic case may have more than one slide, so ``--cases 12`` gives 14 slides).

The real slide is ``--real``, else ``slides/CMU-1-Small-Region.svs`` of the shared data folder
(``$MSTAR_SHARED_DATA``, ``<repo>/shared/data`` or ``<repo>/../shared/data``); without one the real row says
where it looked.

    python benchmarks/tile.py [--cases 12] [--real PATH/TO/CMU-1-Small-Region.svs]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _cli import run, shared_data
from mstar.data.synthetic import SynthConfig, make_cohort
from mstar.errors import MstarError
from mstar.slide.plan import plan_read
from mstar.slide.reader import open_slide
from mstar.slide.tiles_file import read_tiles
from mstar.slide.tiling import TileParams, tile_slide
from mstar.slide.tissue import grid_coords

REAL = "slides/CMU-1-Small-Region.svs"  # inside the shared data folder


def naive_tile(path: Path, params: TileParams) -> np.ndarray:
    with open_slide(path) as slide:
        plan = plan_read(slide.mpp, slide.level_downsamples, params.target_mpp, params.tile_px)
        kept = []
        for x, y in grid_coords(*slide.dimensions, plan.tile_px_level0, plan.step_px_level0):
            tile = slide.read_region(x, y, plan.read_level, plan.read_px)
            sat = cv2.cvtColor(cv2.medianBlur(tile, 5), cv2.COLOR_RGB2HSV)[..., 1]
            if (sat > 20).mean() >= params.min_tissue:
                kept.append((x, y))
        return np.array(kept, dtype=np.int64).reshape(-1, 2)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(map(tuple, a)), set(map(tuple, b))
    return len(sa & sb) / max(1, len(sa | sb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12, help="synthetic cases (some have 2 slides)")
    parser.add_argument("--real", type=Path, default=None,
                        help=f"a real slide (default: {REAL} of the shared data folder)")
    args = parser.parse_args()
    if args.cases < 3:
        raise MstarError(f"--cases {args.cases}: expected at least 3 (as `mstar synth`)")
    try:
        real, absent = [shared_data(REAL, args.real, "--real")], ""
    except MstarError as exc:
        if args.real is not None:  # an explicit path that is not there is an error, not a skipped row
            raise
        real, absent = [], str(exc)
    params = TileParams()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # its hidden progress display still prints a newline
            make_cohort(tmp / "cohort", SynthConfig(cases=args.cases, seed=0), show_progress=False)
        slides = sorted((tmp / "cohort" / "slides").glob("*.svs"))
        groups = {"synthetic": slides, f"real ({Path(REAL).stem})": real}
        print(f"{'slides':28s} {'n':>3s} {'ours s/slide':>13s} {'naive s/slide':>14s} {'speed-up':>9s} "
              f"{'tiles ours':>10s} {'tiles naive':>11s} {'Jaccard':>8s}")
        for name, paths in groups.items():
            if not paths:
                print(f"{name:28s} (absent: {absent})")
                continue
            ours_t, naive_t, jac, n_ours, n_naive = [], [], [], 0, 0
            for p in paths:
                start = time.perf_counter()
                tile_slide(p, tmp / "out", params)
                ours_t.append(time.perf_counter() - start)
                start = time.perf_counter()
                naive = naive_tile(p, params)
                naive_t.append(time.perf_counter() - start)
                ours = read_tiles(tmp / "out" / "tiles" / f"{p.stem}.h5")[0]
                jac.append(jaccard(ours, naive))
                n_ours, n_naive = n_ours + len(ours), n_naive + len(naive)
            o, n = np.mean(ours_t), np.mean(naive_t)
            print(f"{name:28s} {len(paths):3d} {o:13.3f} {n:14.3f} {n / o:8.1f}x {n_ours:10d} {n_naive:11d} "
                  f"{np.mean(jac):8.2f}")


if __name__ == "__main__":
    run(main)
