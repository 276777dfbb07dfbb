"""Multimodal survival on the `mstar synth` cohort: does a model given slides + RNA beat either alone?

Each modality of the synthetic cohort sees the cancer type and TP53 but only its own half of the remaining
risk (``mstar/data/synthetic/truth.py``), so the oracle C-index rises from ~0.68 (either half) to ~0.73
(both). This script makes a cohort (resumable: an existing ``--root`` is reused), tiles it, extracts
``timm:test_vit`` features, writes 5 case-level folds, and trains SNN (RNA), ABMIL (slides), MCAT, Porpoise
and two late-fusion variants with ``mstar train multimodal-survival``'s code path, for each training seed. It
prints the pooled out-of-fold C-index with its bootstrap CI and the per-fold sd, then, for every fusion model,
the paired bootstrap CI of its C-index minus each single-modality model's (`mstar compare`: same resampled
patients for both, the test of "fusion beats X"; separate CIs of correlated models overlap even when one is
better).

    python benchmarks/multimodal_synth.py --root /tmp/mm-synth --cases 150 --seeds 0,1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import run
from mstar.errors import MstarError

MODELS = {
    "snn": ("snn", {}),
    "abmil": ("abmil", {"dim": 64, "attn_dim": 32}),
    "mcat": ("mcat", {}),
    "porpoise": ("porpoise", {}),
    "late-concat": ("late", {"path_width": 64, "attn_dim": 32, "hidden": 64}),
    "late-sum": ("late", {"fusion": "sum", "path_width": 64, "attn_dim": 32}),
}


def prepare(root: Path, cases: int, cohort_seed: int) -> None:
    """Cohort, tiles, test_vit features and 5 folds of the cases with RNA under ``root``."""
    from mstar.data.synthetic import SynthConfig, make_cohort
    from mstar.features.extract import extract_features
    from mstar.slide.batch import tile_many

    start = time.perf_counter()
    make_cohort(root / "cohort", SynthConfig(cases=cases, seed=cohort_seed), workers=2, show_progress=False)
    tile_many([root / "cohort" / "slides"], root / "work", workers=2, show_progress=False)
    extract_features(root / "work", "timm:test_vit", batch_size=64, device="cpu", show_progress=False)
    ids = pd.read_csv(root / "cohort" / "manifests" / "multimodal_survival.csv")["ID"].to_numpy()
    np.random.default_rng(0).shuffle(ids)
    parts = np.array_split(ids, 5)
    (root / "folds").mkdir(exist_ok=True)
    for k in range(5):
        rest = np.concatenate([parts[j] for j in range(5) if j != k])
        pd.DataFrame({"train": pd.Series(rest), "val": pd.Series(parts[k])}).to_csv(
            root / "folds" / f"splits_{k}.csv", index=False)
    print(f"cohort, tiles, features and folds ready in {time.perf_counter() - start:.0f} s ({len(ids)} cases "
          "with RNA)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True,
                        help="cohort/, work/, folds/ and runs/ go here (an existing cohort is reused)")
    parser.add_argument("--cases", type=int, default=150, help="synthetic cases")
    parser.add_argument("--cohort-seed", type=int, default=2, help="`mstar synth --seed`")
    parser.add_argument("--seeds", default="0,1", help="training seeds, comma-separated")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ",".join(MODELS))
    args = parser.parse_args()
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        raise MstarError(f"--models {','.join(unknown)}: unknown (choose from {','.join(MODELS)})")
    seeds = [int(s) for s in args.seeds.split(",")]  # a ValueError here is reported as such
    if args.cases < 10:
        raise MstarError(f"--cases {args.cases}: expected at least 10 (5 folds of the cases with RNA)")
    from mstar.tasks.multimodal import train_multimodal
    from mstar.tasks.multimodal_config import MultimodalConfig

    prepare(args.root, args.cases, args.cohort_seed)
    cohort = args.root / "cohort"
    rows, run_dirs = [], {}
    for seed in seeds:
        for name in args.models.split(","):
            model, model_args = MODELS[name]
            cfg = MultimodalConfig(
                model=model, name=f"{name}-seed{seed}",
                manifest=str(cohort / "manifests" / "multimodal_survival.csv"),
                features="" if model == "snn" else str(args.root / "work" / "features" / "timm-test_vit"),
                rna=str(cohort / "rna" / "cases"), signatures=str(cohort / "signatures.csv"),
                out=str(args.root / "runs"), folds=str(args.root / "folds"), epochs=20, lr=5e-4, batch_size=8,
                patience=20, bootstrap=1000, seed=seed, model_args=model_args)
            result = train_multimodal(cfg, progress=False)
            run_dirs[(name, seed)] = Path(result["run"])
            entry = result["metrics"]["test"]["c_index"]
            rows.append({"model": name, "seed": seed, "c_index": entry["value"], "ci_low": entry["ci_low"],
                         "ci_high": entry["ci_high"], "fold_sd": entry.get("sd"), "n": entry["n"]})
            print(f"{name:12s} seed {seed}  C-index {entry['value']:.3f} [{entry['ci_low']:.3f}, "
                  f"{entry['ci_high']:.3f}]  fold sd {entry.get('sd', float('nan')):.3f}  n={entry['n']}",
                  flush=True)
    table = pd.DataFrame(rows)
    print("\nmean over seeds:")
    print(table.groupby("model", sort=False)["c_index"].agg(["mean", "min", "max"]).round(3).to_string())
    print_paired_differences(run_dirs)


def print_paired_differences(run_dirs: dict[tuple[str, int], Path]) -> None:
    """Paired bootstrap CI of C(fusion) - C(single modality), fold by fold (``mstar compare``)."""
    from mstar.eval.compare import compare_runs

    models = list(dict.fromkeys(name for name, _ in run_dirs))
    seeds = list(dict.fromkeys(seed for _, seed in run_dirs))
    singles = [m for m in models if m in ("snn", "abmil")]
    fusions = [m for m in models if m not in ("snn", "abmil")]
    print("\npaired bootstrap (1,000 resamples of patients) of the C-index difference, fusion - single:")
    for seed in seeds:
        for fusion in fusions:
            for single in singles:
                out = compare_runs(run_dirs[(fusion, seed)], run_dirs[(single, seed)])
                d = out["metrics"]["c_index"]["difference"]
                print(f"seed {seed}  {fusion:12s} - {single:6s}  {d['value']:+.3f} [{d['ci_low']:+.3f}, "
                      f"{d['ci_high']:+.3f}]  n={d['n']}")


if __name__ == "__main__":
    run(main)
