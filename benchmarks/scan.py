"""Hierarchical scan on a `mstar synth` cohort: tiles embedded, wall time, and the downstream metric against
full high-power extraction, with paired CIs, for several keep fractions.

``--work`` (the cohort's ``tiles/`` and full ``features/<enc>/``) is only read. Everything is written under
``--out``, which must be new or empty so that every run measures (nothing finished before is reused):
``<out>/work/`` (a copy of the tiles, where the timed passes write: ``features/``, and ``scan/`` with the
low-power tiles and features, region scores and ``keep<pct>/`` bags), ``<out>/runs/`` and ``<out>/scan.json``.

Steps:

0. full high-power extraction of every tile (on the copy), timed;
1. the low-power pass (`low_power_pass`: 2 µm/px regions holding the tiles, same encoder), timed;
2. the scan run: ABMIL trained on the low-power features for the diagnosis task (train split; epoch chosen on
   val), whose attention ranks each slide's regions;
3. for each keep fraction: `hierarchical_scan` (only the top share embedded at high power), timed;
4. for the diagnosis (macro AUC) and survival (C-index) tasks: the same ABMIL recipe (3 seeds) on the full
   bags and on each scanned set; paired bootstrap of scanned - full on the test cases (`mstar compare`).

    python benchmarks/scan.py --cohort /tmp/gen/synth240/cohort --work /tmp/gen/synth240/work \\
        --out /tmp/scan-bench --keep 0.25 0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from _cli import new_folder, run
from abmil_recipe import RECIPE, train
from mstar.errors import MstarError

ENCODER = "timm:test_vit"


def check_inputs(cohort: Path, work: Path, keep: list[float]) -> None:
    """Everything the run reads, checked before --out is created."""
    for name in ("diagnosis.csv", "survival.csv"):
        if not (cohort / "manifests" / name).is_file():
            raise MstarError(f"--cohort {cohort}: no manifests/{name} (a `mstar synth --out` folder)")
    if not any((work / "tiles").glob("*.h5")):
        raise MstarError(f"--work {work}: no tiles/*.h5 (run `mstar tile SLIDES --out {work}` first)")
    if not (work / "features" / "timm-test_vit").is_dir():
        raise MstarError(f"--work {work}: no features/timm-test_vit/ (run `mstar extract {work} --encoder "
                         f"{ENCODER}` first)")
    bad = [k for k in keep if not 0 < k <= 1]
    if bad:
        raise MstarError(f"--keep {bad[0]}: expected shares in (0, 1]")


def main() -> None:
    from mstar.eval.compare import compare_runs
    from mstar.features.context import low_power_pass
    from mstar.features.extract import extract_features
    from mstar.predict.scan import hierarchical_scan

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="a `mstar synth --out` folder (manifests/)")
    ap.add_argument("--work", type=Path, required=True,
                    help="holds the cohort's tiles/ and full features/timm-test_vit/ (only read)")
    ap.add_argument("--out", type=Path, required=True,
                    help="new or empty folder for every output (work/, runs/, scan.json)")
    ap.add_argument("--keep", type=float, nargs="+", default=[0.25, 0.5],
                    help="shares of each slide's tiles embedded at high power after the scan")
    ap.add_argument("--scan-mpp", type=float, default=2.0, help="µm/px of the low-power pass")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    check_inputs(args.cohort, args.work, args.keep)
    new_folder(args.out)
    torch.set_num_threads(args.threads)
    manifests = args.cohort / "manifests"
    full = str(args.work / "features" / "timm-test_vit")
    result: dict = {"encoder": ENCODER, "scan_mpp": args.scan_mpp, "recipe": RECIPE}

    start = time.perf_counter()  # the full high-power pass, timed on a copy (reads + forward of every tile)
    timing_root = args.out / "work"  # a fresh copy of the tiles: no pass below finds earlier results
    shutil.copytree(args.work / "tiles", timing_root / "tiles")
    extract_features(timing_root, ENCODER, workers=0, show_progress=False, overwrite=True)
    result["full_seconds"] = time.perf_counter() - start
    import pandas as pd

    result["full_tiles"] = int(pd.read_csv(timing_root / "features" / "timm-test_vit" / "summary.csv")
                               ["n_tiles"].sum())

    start = time.perf_counter()
    low = low_power_pass(timing_root, ENCODER, args.scan_mpp, show_progress=False)
    result["low_power_seconds"] = time.perf_counter() - start
    scan_run = train("classify", manifests / "diagnosis.csv", str(low), args.out / "runs", "scan-run")
    result["scan_run"] = scan_run
    runs = {("classify", 1.0): train("classify", manifests / "diagnosis.csv", full, args.out / "runs",
                                     "diagnosis-full"),
            ("survival", 1.0): train("survival", manifests / "survival.csv", full, args.out / "runs",
                                     "survival-full")}
    result["keep"] = {}
    for keep in args.keep:
        start = time.perf_counter()
        scanned = hierarchical_scan(timing_root, ENCODER, scan_run, keep_fraction=keep,
                                    scan_mpp=args.scan_mpp, show_progress=False)
        seconds = time.perf_counter() - start
        table = scanned["summary"]
        entry = {"tiles_embedded": int(table["kept"].sum()), "tiles_total": int(table["tiles"].sum()),
                 "low_power_tiles": int(table["low_power_tiles"].sum()), "scan_seconds": seconds,
                 "seconds_by_step": scanned["seconds"]}
        for task, manifest in (("classify", "diagnosis.csv"), ("survival", "survival.csv")):
            run_dir = train(task, manifests / manifest, scanned["features"], args.out / "runs",
                        f"{'diagnosis' if task == 'classify' else 'survival'}-keep{int(round(100 * keep))}")
            cmp = compare_runs(run_dir, runs[(task, 1.0)], "test")
            metric = "auc_macro" if task == "classify" else "c_index"
            entry[task] = {"metric": metric, **cmp["metrics"][metric]}
        result["keep"][str(keep)] = entry
        print(json.dumps({str(keep): entry}, default=float)[:600], flush=True)
    (args.out / "scan.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"full: {result['full_tiles']} tiles in {result['full_seconds']:.1f} s; low-power pass "
          f"{result['low_power_seconds']:.1f} s")

    def ci(d: dict) -> str:
        return f"{d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"

    for keep, e in result["keep"].items():
        c, s = e["classify"], e["survival"]
        print(f"keep {keep}: {e['tiles_embedded']} / {e['tiles_total']} tiles, {e['scan_seconds']:.1f} s; "
              f"AUC {c['a']:.3f} vs full {c['b']:.3f}: {ci(c['difference'])}; C-index {s['a']:.3f} vs "
              f"{s['b']:.3f}: {ci(s['difference'])}")


if __name__ == "__main__":
    run(main)
