"""bf16 MIL training on the CPU: does it hold accuracy on tasks that are not saturated? Side by side, one run.

The same ABMIL recipe (3 seeds) on the same features, once in fp32 (``--set precision=32``) and once in bf16
mixed precision (``--set precision=bf16``), for the molecular task (TP53, AUC) and survival (C-index) of a
`mstar synth` cohort, the choice cohort (diagnosis is saturated at AUC 1.0 there and shows nothing). Prints
the wall time of each run and the paired bootstrap of bf16 - fp32 on the test cases (`mstar compare`).
``--out`` must be new or empty (nothing trained before is reused, so every run is timed): ``runs/`` and
``bf16_training.json``.

    python benchmarks/cpu_bf16_training.py --cohort /tmp/gen/synth240/cohort \\
        --features /tmp/gen/synth240/work/features/timm-test_vit --out /tmp/bf16-train

The decision rule, fixed before the run: `precision: auto` becomes bf16-mixed on CPUs with native bf16 only if
neither task's difference has a CI entirely below zero and neither point estimate is below -0.01.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from _cli import new_folder, run
from abmil_recipe import RECIPE, train
from mstar.errors import MstarError

TASKS = (("classify", "molecular.csv", "auc_macro"), ("survival", "survival.csv", "c_index"))


def timed_train(task: str, manifest: Path, features: str, out: Path, name: str,
                precision: str) -> tuple[str, float]:
    start = time.perf_counter()
    run = train(task, manifest, features, out, name, precision=precision, accelerator="cpu")
    return run, time.perf_counter() - start


def main() -> None:
    from mstar.eval.compare import compare_runs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="a `mstar synth` cohort (manifests/)")
    ap.add_argument("--features", type=Path, required=True, help="the cohort's features/<enc>/ folder")
    ap.add_argument("--out", type=Path, required=True, help="new or empty folder (runs/, bf16_training.json)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    for _, manifest, _ in TASKS:
        if not (args.cohort / "manifests" / manifest).is_file():
            raise MstarError(f"--cohort {args.cohort}: no manifests/{manifest} (want a `mstar synth` folder)")
    if not any(args.features.glob("*.h5")):
        raise MstarError(f"--features {args.features}: no features files")
    new_folder(args.out)
    torch.set_num_threads(args.threads)
    result = {"recipe": {**RECIPE, "accelerator": "cpu"}, "tasks": {}}
    for task, manifest, metric in TASKS:
        runs, seconds = {}, {}
        for precision in ("32", "bf16"):
            name = f"{manifest.removesuffix('.csv')}-{precision}"
            runs[precision], seconds[precision] = timed_train(
                task, args.cohort / "manifests" / manifest, str(args.features), args.out / "runs", name,
                precision)
        cmp = compare_runs(runs["bf16"], runs["32"], "test")["metrics"][metric]
        result["tasks"][manifest] = {"metric": metric, "seconds": seconds, **cmp}
        d = cmp["difference"]
        print(f"{manifest} {metric}: fp32 {cmp['b']:.3f} ({seconds['32']:.0f} s), bf16 {cmp['a']:.3f} "
              f"({seconds['bf16']:.0f} s); bf16 - fp32 {d['value']:+.3f} [{d['ci_low']:+.3f}, "
              f"{d['ci_high']:+.3f}]", flush=True)
    holds = all(t["difference"]["ci_high"] >= 0 and t["difference"]["value"] >= -0.01
                for t in result["tasks"].values())
    result["accuracy_holds"] = holds
    (args.out / "bf16_training.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"accuracy holds by the rule: {holds}")


if __name__ == "__main__":
    run(main)
