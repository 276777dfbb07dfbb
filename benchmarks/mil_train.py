"""MIL training speed: the upstream-style loop vs `mstar train classify`, same bags, same epochs.

Upstream trains one bag per step and ``torch.load``s every ``.pt`` from disk each epoch (fp32, Adam
2e-4, cosine, ``nn.Dropout``). Ours reads every bag once into RAM (float16), trains padded mini-batches
of several bags, (optionally) samples a random subset of each bag's patches per step, and draws its
dropout masks from raw random bits on CPU (:mod:`mstar.models.dropout`). Both train the same ABMIL
architecture for the same number of epochs on the same synthetic bags, and both are scored on the same
validation bags (AUC) after every epoch, as upstream selects on it. The script prints seconds per epoch
(training + validation) and the final validation AUC of each.

    python benchmarks/mil_train.py --bags 300 --patches 2000 --dim 1024 --epochs 5
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from _cli import run
from mstar.errors import MstarError
from mstar.models.dropout import FastDropout
from mstar.models.registry import create_mil_model
from mstar.tasks.config import TrainConfig
from mstar.tasks.runner import train_task


def make_bags(root: Path, n_bags: int, n_patches: int, dim: int, seed: int = 0) -> Path:
    """Binary task: positives have 10 % of patches shifted along a fixed direction (weak, learnable)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim).astype(np.float32) / np.sqrt(dim) * 6
    rows = []
    (root / "pt").mkdir(parents=True)
    for i in range(n_bags):
        label = i % 2
        feats = rng.standard_normal((n_patches, dim), dtype=np.float32)
        if label:
            hot = rng.random(n_patches) < 0.10
            feats[hot] += direction
        torch.save(torch.from_numpy(feats), root / "pt" / f"S{i:04d}.pt")
        split = "val" if i % 5 == 0 else "train"
        rows.append({"case": f"C{i:04d}", "slide": f"S{i:04d}", "label": ["neg", "pos"][label],
                     "fold": split})
    table = pd.DataFrame(rows)
    test = table[table.fold == "val"].head(2)  # copies of two validation bags
    test = test.assign(case=test.case + "t", slide=test.slide + "t", fold="test")
    for slide in test.slide:  # a slide belongs to one case: the copies get their own files
        shutil.copyfile(root / "pt" / f"{slide[:-1]}.pt", root / "pt" / f"{slide}.pt")
    table = pd.concat([table, test])
    table.to_csv(root / "manifest.csv", index=False)
    return root


def with_torch_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Swap our FastDropout back to ``nn.Dropout`` (what upstream's DAttention uses), in place."""
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, FastDropout):
                setattr(module, name, torch.nn.Dropout(child.p))
    return model


def upstream_loop(root: Path, dim: int, epochs: int, seed: int = 0) -> tuple[float, float]:
    """One bag per step, features re-read from disk every epoch, fp32, validation after every epoch (as the
    upstream scripts, which select on it); returns s/epoch (training + validation) and the final val AUC."""
    table = pd.read_csv(root / "manifest.csv")
    train, val = table[table.fold == "train"], table[table.fold == "val"]
    torch.manual_seed(seed)
    model = with_torch_dropout(create_mil_model("abmil", "classification", 2, in_dim=dim))
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rng = np.random.default_rng(seed)
    times, auc = [], float("nan")
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for i in rng.permutation(len(train)):
            row = train.iloc[i]
            x = torch.load(root / "pt" / f"{row.slide}.pt")[None]  # (1, N, D)
            logits = model(x).logits
            loss = F.cross_entropy(logits, torch.tensor([int(row.label == "pos")]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.inference_mode():
            scores = [torch.softmax(model(torch.load(root / "pt" / f"{s}.pt")[None]).logits, 1)[0, 1].item()
                      for s in val.slide]
        auc = roc_auc_score((val.label == "pos").to_numpy(), scores)
        times.append(time.perf_counter() - start)
    return float(np.mean(times)), auc


def ours(root: Path, epochs: int, batch_size: int, lr: float,
         max_patches: int | None) -> tuple[float, float, float]:
    """`mstar train classify` (Lightning, RAM cache, padded batches); returns s/epoch, load s, val AUC."""
    cfg = TrainConfig(task="classify", manifest=str(root / "manifest.csv"), features=str(root / "pt"),
                      out=str(root / "runs"), name=f"b{batch_size}-p{max_patches}", epochs=epochs, lr=lr,
                      batch_size=batch_size, max_patches=max_patches, patience=epochs, bootstrap=10)
    start = time.perf_counter()
    train_task(cfg, progress=False)
    total = time.perf_counter() - start
    log = pd.read_csv(cfg.run_dir() / "log.csv")
    preds = pd.read_csv(cfg.run_dir() / "predictions.csv")
    val = preds[preds.split == "val"]
    auc = roc_auc_score(val.label == "pos", val["prob_pos"])
    per_epoch = float(log["seconds"].mean())
    return per_epoch, total - per_epoch * len(log), auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", type=int, default=300, help="synthetic bags (slides)")
    parser.add_argument("--patches", type=int, default=2000, help="patches per bag")
    parser.add_argument("--dim", type=int, default=1024, help="patch feature width")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if args.bags < 10:
        raise MstarError(f"--bags {args.bags}: expected at least 10 (every 5th bag validates; both classes)")
    for name in ("patches", "dim", "epochs"):
        if getattr(args, name) < 1:
            raise MstarError(f"--{name} {getattr(args, name)}: expected at least 1")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = make_bags(Path(tmp), args.bags, args.patches, args.dim)
        print(f"{args.bags} bags x {args.patches} patches x {args.dim}-d, {args.epochs} epochs, "
              f"{torch.get_num_threads()} threads")
        up_t, up_auc = upstream_loop(root, args.dim, args.epochs)
        print(f"{'upstream loop (batch 1, .pt per step)':44s} {up_t:8.2f} s/epoch   val AUC {up_auc:.3f}")
        for bs, lr, mp in ((16, 1e-3, None), (16, 1e-3, 512)):
            t, load, auc = ours(root, args.epochs, bs, lr, mp)
            label = f"ours (batch {bs}, RAM fp16{', 512 patches/bag' if mp else ''})"
            print(f"{label:44s} {t:8.2f} s/epoch   val AUC {auc:.3f}   speed-up {up_t / t:.1f}x "
                  f"(one-off load {load:.1f} s)")


if __name__ == "__main__":
    run(main)
