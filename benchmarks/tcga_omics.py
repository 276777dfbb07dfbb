"""Multimodal survival on the real TCGA omics tables, beside the published MCAT-paper figures.

For every cohort in ``--data`` (``tcga_<cohort>.csv.gz`` + ``splits/<cohort>/splits_{k}.csv``) this trains the
genomic-only SNN with `mstar train multimodal-survival`'s code path on the 5 MCAT folds; on the
``--fusion-cohorts`` it also trains the fusion models with synthetic WSI bags (random features: the slide
carries no information, which tests that the omics branches work and that no model invents signal from
noise — ABMIL on those bags should sit at 0.5). Protocol: our clean one (epoch selected on a validation set
carved from each fold's training cases; the fold's ``val`` cases are the reported held-out set), so the
numbers are per-fold held-out C-indices, mean ± sd over folds.

    python benchmarks/tcga_omics.py --data ../shared/data/tcga_omics --out /tmp/tcga_runs

``--data`` defaults to ``tcga_omics/`` of the shared data folder (``$MSTAR_SHARED_DATA``,
``<repo>/shared/data`` or ``<repo>/../shared/data``). Prints a markdown table and writes
``<out>/results.json``; ``--out`` must be new, empty or an earlier output of this script (runs are
retrained).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

import _cli
from _cli import own_folder, shared_data
from mstar.data.cohort_tables import read_fold_dir, read_wide_manifest
from mstar.errors import MstarError
from mstar.tasks.multimodal import train_multimodal
from mstar.tasks.multimodal_config import MultimodalConfig
from mstar.tasks.multimodal_inputs import random_bags

# MCAT paper (Chen et al., ICCV 2021), ResNet-50 features, these splits; mean ± std of per-fold validation
# C-index, as quoted in ../shared/data/README.md.
PUBLISHED_SNN = {"blca": (0.541, 0.016), "brca": (0.466, 0.058), "gbmlgg": (0.598, 0.054),
                 "luad": (0.539, 0.069), "ucec": (0.493, 0.096)}
PUBLISHED_MCAT = {"blca": 0.624, "brca": 0.580, "gbmlgg": 0.817, "luad": 0.620, "ucec": 0.622}
# upstream trains with batch 1 x 32 gradient accumulation, Adam 2e-4, 20 epochs
SNN = dict(epochs=20, lr=2e-4, batch_size=32, patience=20)
# CMTA runs 4 Nystrom transformers bag by bag: at its upstream width (256) far too slow for this CPU budget
FUSION_ARGS = {"cmta": {"dim": 32}, "abmil": {"dim": 64, "attn_dim": 32}}


def run(cfg: MultimodalConfig) -> dict:
    start = time.perf_counter()
    result = train_multimodal(cfg, overwrite=True, progress=False)
    c = result["metrics"]["test"]["c_index"]
    per = c.get("per_unit", [c["value"]])
    return {"mean": float(np.mean(per)), "sd": float(np.std(per, ddof=1)) if len(per) > 1 else 0.0,
            "per_fold": [float(v) for v in per], "ci": [c["ci_low"], c["ci_high"]], "n": c["n"],
            "seconds": round(time.perf_counter() - start, 1), "omics": result["omics"]}


def folds_subset(src: Path, n: int, dst: Path) -> Path:
    """A folder with the first ``n`` split files of ``src`` (all when n >= their number)."""
    files = sorted(src.glob("splits_*.csv"), key=lambda p: int(p.stem.split("_")[1]))
    if n >= len(files):
        return src
    dst.mkdir(parents=True, exist_ok=True)
    for f in files[:n]:
        shutil.copyfile(f, dst / f.name)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="folder of tcga_<cohort>.csv.gz + splits/ (default: see above)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tcga_runs"),
                    help="new, empty or this script's earlier output folder")
    ap.add_argument("--cohorts", nargs="*", default=None, help="default: every tcga_*.csv.gz present")
    ap.add_argument("--snn-modalities", default=None,
                    help="e.g. rnaseq (default: all of rnaseq,cnv,mut present)")
    ap.add_argument("--fusion-cohorts", nargs="*", default=["blca", "luad"])
    ap.add_argument("--fusion-models", nargs="*",
                    default=["mcat", "porpoise", "motcat", "cmta", "late", "abmil"])
    ap.add_argument("--fusion-epochs", type=int, default=4)
    ap.add_argument("--fusion-folds", type=int, default=5)
    ap.add_argument("--slow-folds", type=int, default=1, help="folds for motcat and cmta (slowest on CPU)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()

    args.data = shared_data("tcga_omics", args.data)
    present = sorted(p.name[5:-7] for p in args.data.glob("tcga_*.csv.gz"))
    if not present:
        raise MstarError(f"--data {args.data}: no tcga_<cohort>.csv.gz tables")
    cohorts = present if args.cohorts is None else args.cohorts
    missing = [c for c in cohorts if c not in present]
    if missing:
        raise MstarError(f"--cohorts {' '.join(missing)}: no such table in {args.data} (present: "
                         f"{' '.join(present)})")
    own_folder(args.out, "tcga_omics.py", "--out")
    results: dict = {"snn": {}, "fusion": {}, "settings": {"snn": SNN, "fusion_epochs": args.fusion_epochs}}
    for cohort in cohorts:
        table, folds = args.data / f"tcga_{cohort}.csv.gz", args.data / "splits" / cohort
        cfg = MultimodalConfig(model="snn", manifest=str(table), rna=str(table), folds=str(folds),
                               modalities=args.snn_modalities, out=str(args.out), name=f"{cohort}-snn",
                               bootstrap=args.bootstrap, **SNN)
        results["snn"][cohort] = r = run(cfg)
        print(f"SNN {cohort}: {r['mean']:.3f} ± {r['sd']:.3f} {r['per_fold']} ({r['seconds']} s, "
              f"{r['omics']['input_width']} inputs)", flush=True)
    for cohort in args.fusion_cohorts:
        table, folds = args.data / f"tcga_{cohort}.csv.gz", args.data / "splits" / cohort
        if not table.exists():
            continue
        slides = sum(read_wide_manifest(table).table["slides"], [])
        bags = args.out / "random_bags" / cohort
        random_bags(bags, slides, dim=32, patches=(16, 48), seed=0)
        n_folds = len(read_fold_dir(folds))
        for model in args.fusion_models:
            k = args.slow_folds if model in ("motcat", "cmta") else args.fusion_folds
            fdir = folds_subset(folds, k, args.out / "folds" / f"{cohort}-{k}")
            cfg = MultimodalConfig(model=model, manifest=str(table), rna=str(table), features=str(bags),
                                   folds=str(fdir), out=str(args.out), name=f"{cohort}-{model}",
                                   signatures=str(args.data / "signatures.csv"), epochs=args.fusion_epochs,
                                   lr=2e-4, batch_size=32, patience=args.fusion_epochs,
                                   bootstrap=args.bootstrap, model_args=FUSION_ARGS.get(model, {}))
            r = run(cfg)
            r["folds"] = min(k, n_folds)
            results["fusion"].setdefault(cohort, {})[model] = r
            print(f"{model} {cohort}: {r['mean']:.3f} ± {r['sd']:.3f} {r['per_fold']} ({r['seconds']} s)",
                  flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = ["| cohort | cases | SNN inputs | SNN per-fold C-index | SNN mean ± sd | published SNN | "
             "published MCAT | s |", "|---|---|---|---|---|---|---|---|"]
    for cohort, r in results["snn"].items():
        pub, mcat = PUBLISHED_SNN.get(cohort), PUBLISHED_MCAT.get(cohort)
        folds = ", ".join(f"{v:.3f}" for v in r["per_fold"])
        lines.append(f"| {cohort.upper()} | {r['omics']['cases']} | {r['omics']['input_width']} "
                     f"({'+'.join(r['omics']['modalities'])}) | {folds} | {r['mean']:.3f} ± {r['sd']:.3f} | "
                     f"{f'{pub[0]:.3f} ± {pub[1]:.3f}' if pub else '—'} | {f'{mcat:.3f}' if mcat else '—'} | "
                     f"{r['seconds']:.0f} |")
    if results["fusion"]:
        lines += ["", "| cohort | model | folds | per-fold C-index | mean ± sd | s |",
                  "|---|---|---|---|---|---|"]
        for cohort, models in results["fusion"].items():
            for model, r in models.items():
                folds = ", ".join(f"{v:.3f}" for v in r["per_fold"])
                sd = f" ± {r['sd']:.3f}" if r["folds"] > 1 else ""
                lines.append(f"| {cohort.upper()} | {model} | {r['folds']} | {folds} | {r['mean']:.3f}{sd} | "
                             f"{r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    _cli.run(main)
