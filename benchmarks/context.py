"""Multi-resolution fusion on a `mstar synth` cohort: bags of [high-power | low-power context] per tile
against high-power bags alone (and low-power bags alone), same recipe, paired CIs on the test cases.

``--work`` holds the cohort's high-power ``features/<enc>/`` and the low-power pass ``scan/features/<enc>/``
(`benchmarks/scan.py` or `mstar extract --context-mpp` makes it). Diagnosis (macro AUC) and survival
(C-index), ABMIL, 3 seeds each; the paired bootstrap is `mstar compare`'s.

    python benchmarks/context.py --cohort /tmp/gen/synth240/cohort --work /tmp/gen/synth240/work \\
        --out /tmp/context-bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from abmil_recipe import RECIPE, train


def main() -> None:
    from mstar.eval.compare import compare_runs
    from mstar.features.context import write_context_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--encoder-folder", default="timm-test_vit")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    high = args.work / "features" / args.encoder_folder
    low = args.work / "scan" / "features" / args.encoder_folder
    ctx = args.work / "features" / f"{args.encoder_folder}-ctx"
    if not ctx.is_dir():
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "context.json").write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
