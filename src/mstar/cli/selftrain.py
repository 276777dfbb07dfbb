"""`mstar self-train`: stage 2, self-taught training of the patch encoder from a stage-1 aggregator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.cli.options import (
    Config,
    OldAggregator,
    Out,
    Overwrite,
    Set,
    build_config,
    deprecated,
    say_finished,
)


@app.command("self-train")
def self_train_command(
    tiles: Annotated[Optional[Path], typer.Option(
        "--tiles", help="Work folder holding tiles/<slide>.h5.")] = None,
    features: Annotated[Optional[Path], typer.Option(
        "--features", help="Stored patch features of the stage-1 encoder (the teacher's input).")] = None,
    stage1: Annotated[Optional[Path], typer.Option(
        "--stage1", help="Stage-1 checkpoint (proj.* + vision_encoder.*): the frozen teacher.")] = None,
    encoder: Annotated[Optional[str], typer.Option(
        "--encoder", help="Student architecture: mstar-vitl16, uni, timm:<model>, ...")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", help="Initial student weights (plain state_dict), e.g. uni.bin.")] = None,
    out: Out = None,
    config: Config = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Run name (default: the output encoder's name, <encoder>-s2).")] = None,
    encoder_name: Annotated[Optional[str], typer.Option(
        "--encoder-name", help="Output encoder name (default: the run name).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (validation after each).")] = None,
    steps_per_epoch: Annotated[Optional[int], typer.Option(
        "--steps-per-epoch", help="Optimiser steps per epoch.")] = None,
    slides_per_step: Annotated[Optional[int], typer.Option(
        "--slides-per-step", help="Slides sampled per step per device.")] = None,
    patches_per_slide: Annotated[Optional[int], typer.Option(
        "--patches-per-slide", help="Patches per sampled slide.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Backbone learning rate.")] = None,
    ema_weight: Annotated[Optional[float], typer.Option(
        "--ema-weight", help="Lambda of the EMA term (0.6).")] = None,
    targets: Annotated[Optional[str], typer.Option(
        "--targets",
        help="stored (teacher over stored features) or ema (over EMA-student features).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="auto, 32-true, bf16-mixed or 16-mixed.")] = None,
    grad_checkpointing: Annotated[Optional[bool], typer.Option(
        "--grad-checkpointing/--no-grad-checkpointing", help="Recompute ViT blocks in backward.")] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (DDP when > 1).")] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Patch-reading processes.")] = None,
    slides: Annotated[Optional[Path], typer.Option(
        "--slides", help="Folder of slides if they moved.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.")] = None,
    overwrite: Overwrite = False,
    set_: Set = None,
    aggregator: OldAggregator = None,
) -> None:
    """Stage 2: a patch encoder learns the stage-1 aggregator's per-patch tokens (with an EMA anchor)."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite", "aggregator")}
    opts["stage1"] = deprecated(stage1, aggregator, "--aggregator", "--stage1")
    from mstar.cli.options import make_console
    from mstar.eval.results import format_ci
    from mstar.selftrain.config import SelfTrainConfig
    from mstar.selftrain.train import self_train

    cfg = build_config(SelfTrainConfig, config, set_, keep_false=("grad_checkpointing",), **opts)
    result = self_train(cfg, overwrite=overwrite)
    if "metrics" not in result:
        return  # not rank 0
    console = make_console()
    say_finished(result, "train again")
    for key, label in (("cosine", "held-out cosine(student, target)"),
                       ("knn_balanced_accuracy", "k-NN probe"),
                       ("linear_balanced_accuracy", "linear probe")):
        before = result["metrics"].get("initial", {}).get(key)
        after = result["metrics"].get("final", {}).get(key)
        if before and after:
            console.print(f"{label:34s} {format_ci(before)} -> {format_ci(after)}")
    console.print(f"encoder: {result['encoder']}\nrun directory: {result['run']}")
