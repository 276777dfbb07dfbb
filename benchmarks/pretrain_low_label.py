"""Low-label experiment: TransMIL initialised from a stage-1 aggregator pretrained here vs random init.

On a synthetic cohort (``mstar synth`` → tile → ``timm:test_vit`` features):

1. Stage 1 is pretrained on the cases that are ``train`` in *both* downstream manifests (diagnosis.csv and
   molecular.csv), so no downstream validation or test case (nor its report, which states the TP53 status)
   is ever seen by pretraining.
2. Each downstream task keeps its val/test rows and a stratified ``--fraction`` of its training cases
   (drawn per seed). Two arms train on the same subsample: random-init TransMIL and TransMIL initialised
   from the stage-1 checkpoint (its ``proj`` + trunk, "mSTAR+"). Same width (64), heads, landmarks,
   epochs, learning rates, patience and selection (best validation AUC).
3. Reported: per arm the mean test macro-AUC over seeds, each run's bootstrap CI, and the paired
   difference (pretrained − random) with a 95 % t-interval over seeds (clipped to the AUC's range [0, 1],
   or [-1, 1] for the difference, which the output says when it happens; with few seeds it is wide).

Everything goes to ``--work`` (default ``/tmp/mstar-lowlabel``): the cohort (made once, reused by later
runs), ``runs/`` and the tables. It must be new, empty or an earlier ``--work`` of this script.

Caveat printed with the result: stage 1's triplet loss uses the cancer type of the stage-1 training
cases, which is also the label of the diagnosis task (as in the paper, whose pretraining used TCGA cancer
types); the TP53 task is the cleaner test (its labels are never used in pretraining).

    python benchmarks/pretrain_low_label.py --cases 120 --seeds 5 --fraction 0.25 --work /tmp/lowlabel
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _cli import own_folder, run
from mstar.errors import MstarError


def cohort(work: Path, cases: int, seed: int) -> tuple[Path, Path]:
    """Synthesize, tile and extract once (reused when ``work`` already holds it)."""
    from mstar.data.synthetic import SynthConfig, make_cohort
    from mstar.features.extract import extract_features
    from mstar.slide.batch import tile_many

    root, features = work / "cohort", work / "work" / "features" / "timm-test_vit"
    if not features.is_dir():
        make_cohort(root, SynthConfig(cases=cases, seed=seed), workers=2, show_progress=False)
        tile_many([root / "slides"], work / "work", workers=2, show_progress=False)
        extract_features(work / "work", "timm:test_vit", batch_size=64, device="cpu", show_progress=False)
    return root, features


def stage1_manifest(root: Path, out: Path) -> Path:
    """diagnosis.csv with ``fold=train`` only where the case is train in both downstream manifests."""
    diag = pd.read_csv(root / "manifests" / "diagnosis.csv")
    mol = pd.read_csv(root / "manifests" / "molecular.csv").set_index("case")["fold"]
    both = diag["case"].map(mol).eq("train") & diag["fold"].eq("train")
    diag["fold"] = np.where(both, "train", np.where(diag["fold"].eq("train"), "val", diag["fold"]))
    diag.to_csv(out, index=False)
    return out


def subsample(manifest: Path, fraction: float, seed: int, out: Path) -> Path:
    """Keep val/test rows and a per-class ``fraction`` (at least 2 per class) of the train rows."""
    table = pd.read_csv(manifest)
    rng = np.random.default_rng(seed)
    keep = []
    for _, group in table[table["fold"] == "train"].groupby("label"):
        n = max(2, int(round(fraction * len(group))))
        keep += list(rng.choice(group.index, size=min(n, len(group)), replace=False))
    table[(table["fold"] != "train") | table.index.isin(keep)].to_csv(out, index=False)
    return out


def downstream(manifest: Path, features: Path, out: Path, name: str, ckpt: str | None, args) -> dict:
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    geo = {"dim": 64, "heads": 4, "dim_head": 16, "num_landmarks": 32}
    common = dict(task="classify", manifest=str(manifest), features=str(features), out=str(out), name=name,
                  model="transmil", epochs=args.epochs, lr=args.lr, batch_size=8, patience=args.patience,
                  max_patches=256, bootstrap=1000, seed=0)
    if ckpt:
        cfg = TrainConfig(**common, stage1=ckpt, aggregator_proj="checkpoint",
                          aggregator_lr=args.aggregator_lr, model_args={"num_landmarks": 32})
    else:  # the same architecture: Linear input projection (no ReLU), random init
        cfg = TrainConfig(**common, model_args={**geo, "input_proj": "linear"})
    return train_task(cfg, progress=False)["metrics"]["test"]["auc_macro"]


def t_interval(x: np.ndarray, low: float, high: float) -> tuple[float, float, float, bool]:
    """Mean and 95 % t-interval over seeds, clipped to [low, high]; and whether it was clipped."""
    from scipy import stats

    m = float(np.mean(x))
    if len(x) < 2:
        return m, float("nan"), float("nan"), False
    half = float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / np.sqrt(len(x)))
    clipped = m - half < low or m + half > high
    return m, max(low, m - half), min(high, m + half), clipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=120, help="synthetic cases (`mstar synth --cases`)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="labelled subsamples (paired across arms; at least 2 for an interval)")
    parser.add_argument("--fraction", type=float, default=0.25, help="labelled fraction of the train cases")
    parser.add_argument("--tasks", nargs="+", default=["diagnosis", "molecular"],
                        choices=("diagnosis", "molecular"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3, help="head / random-init learning rate")
    parser.add_argument("--aggregator-lr", type=float, default=2e-4,
                        help="pretrained aggregator learning rate")
    parser.add_argument("--stage1-epochs", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mstar-lowlabel"),
                        help="new, empty or this script's earlier --work (its cohort is reused)")
    args = parser.parse_args()
    if args.cases < 20:
        raise MstarError(f"--cases {args.cases}: expected at least 20")
    if args.seeds < 1 or args.epochs < 1 or args.stage1_epochs < 1:
        raise MstarError("--seeds, --epochs and --stage1-epochs: expected at least 1")
    if not 0 < args.fraction <= 1:
        raise MstarError(f"--fraction {args.fraction}: expected a share in (0, 1]")
    own_folder(args.work, "pretrain_low_label.py", "--work")
    torch.set_num_threads(1)  # tiny models: faster single-threaded on small CPUs
    start = time.perf_counter()
    root, features = cohort(args.work, args.cases, seed=3)

    from mstar.demo.settings import DEMO_STAGE1
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain

    s1 = stage1_manifest(root, args.work / "stage1.csv")
    cfg = Stage1Config(manifest=str(s1), features=str(features), reports=str(root / "reports.json"),
                       rna=str(root / "rna" / "expression.csv"), out=str(args.work / "runs"), name="stage1",
                       accelerator="cpu", **{**DEMO_STAGE1, "epochs": args.stage1_epochs})
    pre = pretrain(cfg, progress=False)
    val = pre["metrics"]["val"]
    print(f"stage 1: {pre['meta']['counts']['train_slides']} training slides; held-out slide→report R@1 "
          f"{val['slide_to_report/recall@1']['value']:.2f} "
          f"(chance {val['slide_to_report/recall@1']['chance']:.2f})")
    rows = []
    for task in args.tasks:
        for seed in range(args.seeds):
            manifest = subsample(root / "manifests" / f"{task}.csv", args.fraction, seed,
                                 args.work / f"{task}-f{args.fraction}-s{seed}.csv")
            n_train = int((pd.read_csv(manifest)["fold"] == "train").sum())
            for arm, ckpt in (("random", None), ("stage1", pre["checkpoint"])):
                name = f"{task}-f{args.fraction}-{arm}-s{seed}"
                entry = downstream(manifest, features, args.work / "runs", name, ckpt, args)
                rows.append({"task": task, "seed": seed, "arm": arm, "n_train": n_train,
                             "auc": entry["value"], "ci_low": entry["ci_low"], "ci_high": entry["ci_high"],
                             "n_test": entry["n"]})
                print(f"  {task:9s} seed {seed} {arm:6s} train {n_train:3d}  test AUC {entry['value']:.3f} "
                      f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] (n={entry['n']})", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.work / f"low_label-f{args.fraction}.csv", index=False)
    summary = {}
    print(f"\nlabelled fraction {args.fraction} of train, {args.seeds} seeds, "
          f"{(time.perf_counter() - start) / 60:.1f} min in all")
    for task, group in table.groupby("task", sort=False):
        wide = group.pivot(index="seed", columns="arm", values="auc")
        diff = t_interval((wide["stage1"] - wide["random"]).to_numpy(), -1.0, 1.0)
        means = {arm: t_interval(wide[arm].to_numpy(), 0.0, 1.0) for arm in ("random", "stage1")}
        clipped = [name for name, t in (("random", means["random"]), ("stage-1 init", means["stage1"]),
                                        ("difference", diff)) if t[3]]
        summary[task] = {"random": means["random"][:3], "stage1": means["stage1"][:3], "difference": diff[:3],
                         "clipped": clipped,
                         "n_train": int(group["n_train"].iloc[0]), "n_test": int(group["n_test"].iloc[0])}
        print(f"{task:9s} (train {summary[task]['n_train']}, test {summary[task]['n_test']}): "
              f"random {means['random'][0]:.3f} [{means['random'][1]:.3f}, {means['random'][2]:.3f}]  "
              f"stage-1 init {means['stage1'][0]:.3f} [{means['stage1'][1]:.3f}, {means['stage1'][2]:.3f}]  "
              f"difference {diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]")
        if clipped:
            print(f"  ({', '.join(clipped)}: the t-interval over {args.seeds} seeds is clipped to the "
                  "possible range)")
    (args.work / f"low_label-f{args.fraction}.json").write_text(json.dumps(summary, indent=1))
    print("caveat: diagnosis labels = cancer types, which stage 1's triplet loss used on its training cases; "
          "TP53 (molecular) labels were never used in pretraining")


if __name__ == "__main__":
    run(main)
