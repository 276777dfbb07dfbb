"""Multi-resolution fusion on a `mstar synth` cohort: bags of [high-power | low-power context] per tile
against high-power bags alone (and low-power bags alone), same recipe, paired CIs on the test cases.

Reads the cohort's high-power ``<work>/features/<enc>/`` and a low-power pass of the same slides (``--low``,
default ``<work>/scan/features/<enc>/``, which ``mstar extract WORK --encoder timm:test_vit --scan-only``
writes; ``benchmarks/scan.py`` writes one to ``<its --out>/work/scan/features/<enc>/``). ``--work`` is only
read; everything is written under ``--out`` (new or empty: nothing finished before is reused): the context
bags ``features/<enc>-ctx/``, ``runs/`` and ``context.json``. Diagnosis (macro AUC) and survival (C-index),
ABMIL, 3 seeds each; the paired bootstrap is `mstar compare`'s.

    python benchmarks/context.py --cohort /tmp/gen/synth240/cohort --work /tmp/gen/synth240/work \\
        --out /tmp/context-bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _cli import new_folder, run
from abmil_recipe import RECIPE, train
from mstar.errors import MstarError


def main() -> None:
    from mstar.eval.compare import compare_runs
    from mstar.features.context import write_context_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="a `mstar synth --out` folder (manifests/)")
    ap.add_argument("--work", type=Path, required=True, help="holds features/<enc>/ (only read)")
    ap.add_argument("--low", type=Path, default=None,
                    help="the low-power features folder (default: <work>/scan/features/<enc>)")
    ap.add_argument("--out", type=Path, required=True,
                    help="new or empty folder for every output (features/<enc>-ctx/, runs/, context.json)")
    ap.add_argument("--encoder-folder", default="timm-test_vit", help="<enc>: the features subfolder name")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    high = args.work / "features" / args.encoder_folder
    low = args.low or args.work / "scan" / "features" / args.encoder_folder
    for folder, how in ((high, f"mstar extract {args.work} --encoder ..."),
                        (low, f"mstar extract {args.work} --encoder ... --scan-only")):
        if not any(folder.glob("*.h5")):
            raise MstarError(f"{folder}: no features files (make them with `{how}`)")
    new_folder(args.out)
    torch.set_num_threads(args.threads)
    ctx = args.out / "features" / f"{args.encoder_folder}-ctx"
    write_context_folder(high, low, ctx)
    arms = {"high": (high, False), "context": (ctx, True), "low": (low, False)}
    result: dict = {"recipe": RECIPE}
    tasks = (("classify", "diagnosis.csv", "auc_macro"), ("survival", "survival.csv", "c_index"))
    for task, manifest, metric in tasks:
        runs = {}
        for arm, (folder, context) in arms.items():
            runs[arm] = train(task, args.cohort / "manifests" / manifest, str(folder), args.out / "runs",
                              f"{task}-{arm}", context=context)
        result[task] = {"metric": metric}
        for arm in ("context", "low"):
            cmp = compare_runs(runs[arm], runs["high"], "test")["metrics"][metric]
            result[task][f"{arm}_vs_high"] = cmp
            d = cmp["difference"]
            print(f"{task} {metric}: {arm} {cmp['a']:.3f} vs high-power {cmp['b']:.3f}: {d['value']:+.3f} "
                  f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]", flush=True)
    (args.out / "context.json").write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    run(main)
