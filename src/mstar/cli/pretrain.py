"""`mstar pretrain` (stage 1: slides + reports + RNA) and `mstar embed` (embeddings from a stage-1 checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app

PathOpt = Optional[Path]


@app.command("pretrain")
def pretrain(
    manifest: Annotated[PathOpt, typer.Option("--manifest", help="Slides with case and cancer type "
                                              "(case,slide,label[,fold] or a survival manifest with Study).")] = None,
    features: Annotated[PathOpt, typer.Option("--features", help="Folder of <slide>.h5/.pt patch features.")] = None,
    reports: Annotated[PathOpt, typer.Option("--reports", help="JSON {slide_or_case: report text}.")] = None,
    rna: Annotated[PathOpt, typer.Option("--rna", help="RNA table (genes x cases CSV/parquet) or a folder of "
                                         "per-case Gene,Value CSVs.")] = None,
    text_encoder: Annotated[PathOpt, typer.Option("--text-encoder", help="Local Hugging Face BERT folder "
                                                  "(BioBERT); default: the demo's MiniLM.")] = None,
    gene2vec: Annotated[PathOpt, typer.Option("--gene2vec", help="Gene2Vec-format vectors (frozen gene "
                                              "identities).")] = None,
    config: Annotated[PathOpt, typer.Option("--config", help="YAML with any stage-1 setting.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Slides per step per device "
                                                      "(contrastive negatives span all devices).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (AdamW, warm-up + cosine).")] = None,
    max_patches: Annotated[Optional[int], typer.Option("--max-patches", help="Patches sampled per slide per "
                                                       "step (all of them at evaluation).")] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (>1: DDP with gathered "
                                                   "embeddings).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.")] = None,
    out: Annotated[PathOpt, typer.Option("--out", help="Runs folder (runs/pretrain/<name>/ inside).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: <manifest>-stage1).")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Drop slides without (or with empty) "
                                               "features.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start the run again instead of resuming "
                                            "it from checkpoints/last.ckpt.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any setting as key=value (YAML value), "
                                                      "e.g. --set text_train_layers=2.")] = None,
) -> None:
    """Stage-1 pretraining: align slide, report and RNA embeddings (InfoNCE) and separate cancer types (triplet).

    Re-running the same command resumes an interrupted run; a finished run is reported, not retrained.
    """
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite")}
    from rich.console import Console

    from mstar.eval.results import format_ci
    from mstar.pretrain.stage1_config import load_stage1_config
    from mstar.pretrain.stage1_train import pretrain as run_pretrain
    from mstar.tasks.config import parse_override

    overrides = dict(parse_override(s) for s in (set_ or []))
    overrides.update({k: str(v) if isinstance(v, Path) else v for k, v in opts.items()
                      if v is not None and v is not False})
    result = run_pretrain(load_stage1_config(str(config) if config else None, overrides), overwrite=overwrite)
    console = Console()
    val = result.get("metrics", {}).get("val", {})
    for direction in ("slide_to_report", "report_to_slide", "slide_to_gene", "gene_to_slide"):
        shown = [f"R@{k} {format_ci(val[key])} (chance {val[key]['chance']:.3f})"
                 for k in (1, 5, 10) if (key := f"{direction}/recall@{k}") in val]
        if shown:
            console.print(f"held-out {direction.replace('_to_', ' → '):15s} " + "  ".join(shown[:2]))
    if "slide_knn_accuracy" in val:
        knn = val["slide_knn_accuracy"]
        console.print(f"held-out cancer-type k-NN accuracy of slide embeddings {format_ci(knn)} "
                      f"(majority {knn['chance']:.3f})")
    console.print(f"run directory: {result['run']}\ncheckpoint: {result.get('checkpoint', '')}")


@app.command("embed")
def embed(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="stage1.pt written by `mstar pretrain`.")],
    features: Annotated[Path, typer.Option("--features", help="Patch features of the cohort (same encoder).")],
    out: Annotated[Path, typer.Option("--out", help="h5 file to write (slide/report/gene embeddings).")],
    manifest: Annotated[PathOpt, typer.Option("--manifest", help="Slides and cases (default: every feature "
                                              "file is a slide).")] = None,
    reports: Annotated[PathOpt, typer.Option("--reports", help="JSON {slide_or_case: report text}.")] = None,
    rna: Annotated[PathOpt, typer.Option("--rna", help="RNA table or folder of per-case CSVs.")] = None,
    text_encoder: Annotated[PathOpt, typer.Option("--text-encoder", help="The text model's folder, if it "
                                                  "moved since pretraining.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Slides per forward pass.")] = 8,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Drop slides without features.")] = False,
) -> None:
    """Write slide, report and gene embeddings of a cohort (h5) from a stage-1 checkpoint."""
    from rich import print as rprint

    from mstar.pretrain.stage1_embed import embed_cohort

    s = embed_cohort(checkpoint, features, out, manifest, reports, rna, text_encoder=text_encoder,
                     batch_size=batch_size, device=device, skip_missing=skip_missing)
    rprint(f"{s['slides']} slides, {s['reports']} reports, {s['genes']} RNA profiles -> {s['out']} "
           f"({s['dim']}-d, not normalised)")
