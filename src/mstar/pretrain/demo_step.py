"""The demo's stage-1 step: a small pretraining on the demo cohort, reporting held-out retrieval vs chance.

:func:`step_pretrain` is the library call (returns the key numbers as a dict); :func:`demo_step` adapts it
to ``mstar.demo`` (``ctx -> (output location, key numbers)``).
"""

from __future__ import annotations

import time
from pathlib import Path

# A small configuration that learns the synthetic cohort in about 30 s on 2 CPU cores: 64-d everything, the
# frozen MiniLM with its [CLS] cached (only proj_text trains), a 1-layer Performer over the synthetic genes.
DEMO_STAGE1 = dict(dim=64, vision_args={"heads": 4, "dim_head": 16, "num_landmarks": 32},
                   gene_args={"dim": 32, "depth": 1, "heads": 4, "dim_head": 8}, max_patches=256, batch_size=16,
                   epochs=20, lr=3e-3, warmup_fraction=0.05, val_every=5, bootstrap=500, max_tokens=128)


def step_pretrain(out: Path, cohort: Path, features: Path, seed: int = 0, threads: int | None = 1,
                  progress: bool = False, **overrides) -> dict:
    """Pretrain stage 1 on a synthetic cohort (``diagnosis.csv``, ``reports.json``, ``rna/expression.csv``).

    Args:
        out: Runs folder (the run is ``<out>/pretrain/demo-stage1``).
        cohort: The synthetic cohort folder (``mstar synth``).
        features: Its patch features folder.
        seed: Seed of the run.
        threads: Torch intra-op threads while training (1: tiny models run faster single-threaded on
            small CPUs; None: leave as is).
        progress: Print a line per epoch.
        **overrides: Any :class:`~mstar.pretrain.stage1_config.Stage1Config` field.

    Returns:
        ``run``, ``checkpoint``, ``seconds``, ``heldout`` (held-out slides), and per direction
        (``slide_to_report``, ``report_to_slide``, ``slide_to_gene``) ``{"r1", "r5", "r1_ci",
        "chance_r1", "chance_r5", "n"}``, plus ``knn_accuracy`` / ``knn_chance`` (cancer type from slide
        embeddings).
    """
    import torch

    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain

    cohort = Path(cohort)
    cfg = Stage1Config(manifest=str(cohort / "manifests" / "diagnosis.csv"), features=str(features),
                       reports=str(cohort / "reports.json"), rna=str(cohort / "rna" / "expression.csv"),
                       out=str(out), name="demo-stage1", seed=seed, accelerator="cpu",
                       **{**DEMO_STAGE1, **overrides})
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        result = pretrain(cfg, progress=progress)
    finally:
        torch.set_num_threads(before)
    val = result["metrics"].get("val", {})
    numbers: dict = {"run": result["run"], "checkpoint": result["checkpoint"],
                     "seconds": round(time.perf_counter() - start, 1)}
    for direction in ("slide_to_report", "report_to_slide", "slide_to_gene"):
        r1, r5 = val.get(f"{direction}/recall@1"), val.get(f"{direction}/recall@5")
        if r1 is not None and r5 is not None:
            numbers[direction] = {"r1": r1["value"], "r5": r5["value"], "r1_ci": (r1["ci_low"], r1["ci_high"]),
                                  "chance_r1": r1["chance"], "chance_r5": r5["chance"], "n": r1["n"]}
    if "slide_knn_accuracy" in val:
        numbers["knn_accuracy"] = val["slide_knn_accuracy"]["value"]
        numbers["knn_chance"] = val["slide_knn_accuracy"]["chance"]
        numbers["heldout"] = val["slide_knn_accuracy"]["n"]
    return numbers


def summary(numbers: dict) -> str:
    """``held-out slide→report R@1 0.42 [0.23, 0.62] (chance 0.04), R@5 ...; slide→RNA ...; k-NN type ...``."""
    parts = []
    for direction, label in (("slide_to_report", "slide→report"), ("slide_to_gene", "slide→RNA")):
        d = numbers.get(direction)
        if d:
            parts.append(f"{label} R@1 {d['r1']:.2f} [{d['r1_ci'][0]:.2f}, {d['r1_ci'][1]:.2f}] "
                         f"(chance {d['chance_r1']:.2f}), R@5 {d['r5']:.2f} (chance {d['chance_r5']:.2f})")
    if "knn_accuracy" in numbers:
        parts.append(f"cancer type k-NN {numbers['knn_accuracy']:.2f} (majority {numbers['knn_chance']:.2f})")
    n = numbers.get("heldout")
    return f"held-out{f' ({n} slides)' if n else ''}: " + "; ".join(parts)


def demo_step(ctx) -> tuple[str, str]:
    """``mstar demo`` adapter: pretrain on ``ctx``'s cohort and features; numbers go to ``ctx.results``."""
    from mstar.features.demo_step import DEMO_ENCODER
    from mstar.features.encoders import folder_name

    numbers = step_pretrain(ctx.out / "runs", ctx.cohort, ctx.work / "features" / folder_name(DEMO_ENCODER),
                            seed=ctx.seed)
    ctx.results["pretrain"] = numbers
    return numbers["run"], summary(numbers)
