"""`mstar pretrain` (stage 1: slides + reports + RNA) and `mstar embed` (embeddings from a stage-1
checkpoint)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.cli.options import (
    Config,
    Device,
    Features,
    Name,
    OldCheckpoint,
    Out,
    Overwrite,
    PathOpt,
    Reports,
    Rna,
    Seed,
    Set,
    SkipMissing,
    Stage1,
    TextCache,
    TextEncoder,
    build_config,
    deprecated,
    say_finished,
)


@app.command("pretrain")
def pretrain(
    manifest: Annotated[PathOpt, typer.Option(
        "--manifest", help="Slides with case and cancer type (case,slide,label[,fold] or a survival manifest "
                           "with Study).")] = None,
    features: Features = None, reports: Reports = None, rna: Rna = None,
    text_encoder: Annotated[PathOpt, typer.Option("--text-encoder", help="Local Hugging Face BERT folder "
                                                  "(BioBERT); default: the demo's MiniLM.")] = None,
    gene2vec: Annotated[PathOpt, typer.Option("--gene2vec", help="Gene2Vec-format vectors (frozen gene "
                                              "identities).")] = None,
    config: Config = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Slides per step per device "
                                                      "(contrastive negatives span all devices).")] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Peak learning rate (AdamW, warm-up + cosine).")] = None,
    max_patches: Annotated[Optional[int], typer.Option("--max-patches", help="Patches sampled per slide per "
                                                       "step (all of them at evaluation).")] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (>1: DDP with gathered "
                                                   "embeddings).")] = None,
    continue_from: Annotated[PathOpt, typer.Option(
        "--continue-from", help="Finished stage-1 run folder to continue on this run's cases (new cases "
                                "accrue).")] = None,
    replay_fraction: Annotated[Optional[float], typer.Option(
        "--replay-fraction", help="Share of the --continue-from run's training cases mixed back in.")] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Train and hold out only these cancer types (comma-separated).")] = None,
    text_cache: TextCache = None,
    seed: Seed = None, out: Out = None, name: Name = None, skip_missing: SkipMissing = False,
    overwrite: Overwrite = False, set_: Set = None,
) -> None:
    """Stage-1 pretraining: align slide, report and RNA embeddings; separate cancer types (triplet).

    Re-running the same command resumes an interrupted run; a finished run is reported, not retrained.
    """
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite")}
    if labels is not None:
        opts["labels"] = [x.strip() for x in labels.split(",") if x.strip()]
    from mstar.cli.options import make_console
    from mstar.eval.results import format_ci
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain as run_pretrain

    result = run_pretrain(build_config(Stage1Config, config, set_, **opts), overwrite=overwrite)
    if "metrics" not in result:
        return  # not rank 0
    console = make_console()
    say_finished(result, "train again")
    prep = (result.get("meta", {}).get("counts", {}).get("report_prep") or {}).get("summary")
    if prep:  # what the raw-OCR clean-up did (also in metrics.json)
        console.print(prep, highlight=False)
    val = result.get("metrics", {}).get("val", {})
    for direction in ("slide_to_report", "report_to_slide", "slide_to_gene", "gene_to_slide",
                      "report_to_gene", "gene_to_report"):
        shown = [f"R@{k} {format_ci(val[key])} (chance {val[key]['chance']:.3f})"
                 for k in (1, 5, 10) if (key := f"{direction}/recall@{k}") in val]
        if shown:
            console.print(f"held-out {direction.replace('_to_', ' → '):16s} " + "  ".join(shown[:2]))
    for modality in ("slide", "report", "gene"):
        if (knn := val.get(f"{modality}_knn_accuracy")) is not None:
            console.print(f"held-out cancer-type k-NN accuracy of {modality} embeddings {format_ci(knn)} "
                          f"(majority {knn['chance']:.3f})")
    console.print(f"run directory: {result['run']}\ncheckpoint: {result.get('checkpoint', '')}")


@app.command("embed")
def embed(
    stage1: Stage1 = None, features: Features = None,
    manifest: Annotated[PathOpt, typer.Option("--manifest", help="Slides and cases (default: every feature "
                                              "file is a slide).")] = None,
    reports: Reports = None, rna: Rna = None, text_encoder: TextEncoder = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Slides per forward pass.")] = None,
    device: Device = None, skip_missing: SkipMissing = False, out: Out = None, name: Name = None,
    text_cache: TextCache = None,
    out_h5: Annotated[PathOpt, typer.Option("--out-h5", help="Write the embeddings to this h5 file instead "
                                            "of <out>/embed/<name>/embeddings.h5.")] = None,
    overwrite: Overwrite = False, config: Config = None, set_: Set = None, checkpoint: OldCheckpoint = None,
) -> None:
    """Write slide, report and gene embeddings of a cohort (h5) from a stage-1 checkpoint."""
    from mstar.cli.options import rprint
    from mstar.pretrain.stage1_embed import EmbedConfig, embed_cohort

    stage1 = deprecated(stage1, checkpoint, "--checkpoint", "--stage1")
    if out is not None and out.suffix == ".h5":  # the old meaning of --out: the h5 file itself
        out_h5 = deprecated(out_h5, out, "--out FILE.h5", "--out-h5 FILE.h5 (--out is the runs folder)")
        out = None
    cfg = build_config(EmbedConfig, config, set_, stage1=stage1, features=features, manifest=manifest,
                       reports=reports, rna=rna, text_encoder=text_encoder, batch_size=batch_size,
                       device=device, skip_missing=skip_missing, out=out, name=name, out_h5=out_h5,
                       text_cache=text_cache)
    s = embed_cohort(cfg, overwrite=overwrite)
    say_finished(s, "embed again")
    rprint(f"{s['slides']} slides, {s['reports']} reports, {s['genes']} RNA profiles -> {s['out']} "
           f"({s['dim']}-d, not normalised)")
