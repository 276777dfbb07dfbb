"""`mstar zero-shot`, `mstar few-shot`, `mstar retrieve`: using a stage-1 model without (or with few)
labels."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.cli.options import (
    Config,
    Device,
    Features,
    LabelColumn,
    Manifest,
    Name,
    OldCheckpoint,
    Out,
    Overwrite,
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

Prompts = Annotated[Optional[str], typer.Option(
    "--prompts", help="Prompt JSON {\"0\": {classnames, templates}} or a packaged set "
                      "(synthetic_cancer_type).")]
Js = Annotated[Optional[str], typer.Option(
    "--js", help="Top-j pooling sizes (patches per class), comma-separated (default 1,5,10,50,100).")]
TopJ = Annotated[Optional[int], typer.Option(
    "--top-j", help="Fix j instead of choosing it on the val split.")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", help="Softmax temperature (0.07).")]
Bootstrap = Annotated[Optional[int], typer.Option(
    "--bootstrap", help="Bootstrap resamples of the CIs (1000).")]


def _entry(metrics: dict, key: str) -> str:
    from mstar.eval.results import format_ci

    return format_ci(metrics[key]) if key in metrics else "n/a"


def _finished(console, result: dict) -> None:
    say_finished(result, "run again")


@app.command("zero-shot")
def zero_shot_cmd(
    stage1: Stage1 = None, prompts: Prompts = None, manifest: Manifest = None, features: Features = None,
    label_column: LabelColumn = None, js: Js = None, top_j: TopJ = None, temperature: Temperature = None,
    bootstrap: Bootstrap = None, seed: Seed = None,
    heatmaps: Annotated[Optional[int], typer.Option(
        "--heatmaps", help="Test slides with a similarity heatmap (0: none; default 4).")] = None,
    modality: Annotated[Optional[str], typer.Option(
        "--modality", help="What is compared with the prompts: slide (default), gene (RNA embeddings, "
                           "--rna) or report (report embeddings, --reports).")] = None,
    reports: Reports = None, rna: Rna = None, text_cache: TextCache = None,
    out: Out = None, name: Name = None, device: Device = None, text_encoder: TextEncoder = None,
    skip_missing: SkipMissing = False, overwrite: Overwrite = False, config: Config = None, set_: Set = None,
    checkpoint: OldCheckpoint = None,
) -> None:
    """Zero-shot classification from text prompts: slides (patch top-j and slide-embedding scoring), or the
    RNA or report embeddings of each case."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite", "checkpoint")}
    from mstar.cli.options import make_console
    from mstar.zeroshot.config import ZeroShotConfig
    from mstar.zeroshot.zero_shot import zero_shot

    opts["stage1"] = deprecated(stage1, checkpoint, "--checkpoint", "--stage1")
    result = zero_shot(build_config(ZeroShotConfig, config, set_, **opts), overwrite=overwrite)
    test, n_c = result["metrics"]["test"], len(result["classes"])
    console = make_console()
    _finished(console, result)
    for key in ("slide", "patch", "gene", "report"):
        if f"{key}/balanced_accuracy" not in test:
            continue
        label = f"{key} (j={result['chosen_j']}, from {result['j_source']})" if key == "patch" else key
        console.print(f"test {label:28s} balanced acc. {_entry(test, f'{key}/balanced_accuracy')}  "
                      f"AUC {_entry(test, f'{key}/auc_macro')}  (chance {1 / n_c:.3f})")
    console.print(f"run directory: {result['run']}")


@app.command("few-shot")
def few_shot_cmd(
    stage1: Stage1 = None, prompts: Prompts = None, manifest: Manifest = None, features: Features = None,
    shots: Annotated[Optional[str], typer.Option("--shots", help="Support slides per class, comma-separated "
                                                                 "(default 1,2,4,8).")] = None,
    runs: Annotated[Optional[int], typer.Option("--runs", help="Seeded support draws per k (10).")] = None,
    methods: Annotated[Optional[str], typer.Option(
        "--methods", help="Comma-separated subset of text_prototypes, simpleshot, linear_probe.")] = None,
    top_patches: Annotated[Optional[int], typer.Option("--top-patches", help="Support patches per text "
                                                                             "prototype (100).")] = None,
    prototype_rule: Annotated[Optional[str], typer.Option(
        "--prototype-rule", help="per_case (default: each support case weighs the same, unit prototypes) or "
                                 "upstream (mSTAR's top-100 pooled patches).")] = None,
    label_column: LabelColumn = None, js: Js = None, top_j: TopJ = None, temperature: Temperature = None,
    seed: Seed = None, out: Out = None, name: Name = None, device: Device = None,
    text_encoder: TextEncoder = None, skip_missing: SkipMissing = False, overwrite: Overwrite = False,
    config: Config = None, set_: Set = None, checkpoint: OldCheckpoint = None,
) -> None:
    """Few-shot slide classification: text-guided prototypes, SimpleShot and a linear probe vs k."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite", "checkpoint")}
    from rich.table import Table

    from mstar.cli.options import make_console
    from mstar.zeroshot.config import FewShotConfig
    from mstar.zeroshot.few_shot import few_shot

    opts["stage1"] = deprecated(stage1, checkpoint, "--checkpoint", "--stage1")
    cfg = build_config(FewShotConfig, config, set_, **opts)
    result = few_shot(cfg, overwrite=overwrite)
    summary = result["summary"]
    table = Table(title=f"test balanced accuracy, median [IQR] over {cfg.runs} draws")
    table.add_column("k")
    methods_ = list(dict.fromkeys(summary["method"]))
    for m in methods_:
        table.add_column(m)
    bacc = summary[summary["metric"] == "balanced_accuracy"]
    for k in result["shots"]:
        cells = []
        for m in methods_:
            r = bacc[(bacc["method"] == m) & (bacc["k"] == k)].iloc[0]
            cells.append(f"{r['median']:.3f} [{r['q25']:.3f}, {r['q75']:.3f}]")
        table.add_row(str(k), *cells)
    console = make_console()
    _finished(console, result)
    console.print(table)
    console.print(f"run directory: {result['run']}")


@app.command("retrieve")
def retrieve_cmd(
    stage1: Stage1 = None, manifest: Manifest = None, features: Features = None, reports: Reports = None,
    rna: Rna = None,
    rna_layout: Annotated[Optional[str], typer.Option(
        "--rna-layout", help="auto, genes_x_cases, cases_x_genes, wide, per_case.")] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="Split to retrieve within: test (default), val, train or all.")] = None,
    label_column: LabelColumn = None, bootstrap: Bootstrap = None, seed: Seed = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Slides per forward pass.")] = None,
    within_label: Annotated[Optional[bool], typer.Option(
        "--within-label/--pan", help="Also retrieve within each label (cancer type): the gallery of a query "
                                     "holds only its own type.")] = None,
    text_cache: TextCache = None,
    out: Out = None, name: Name = None, device: Device = None, text_encoder: TextEncoder = None,
    skip_missing: SkipMissing = False, overwrite: Overwrite = False, config: Config = None, set_: Set = None,
    checkpoint: OldCheckpoint = None,
) -> None:
    """Slide↔report, slide↔gene and slide→slide retrieval: Recall@1/5/10/50 and mAP with CIs."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite", "checkpoint")}
    from mstar.cli.options import make_console
    from mstar.zeroshot.config import RetrievalConfig
    from mstar.zeroshot.retrieve import retrieve

    opts["stage1"] = deprecated(stage1, checkpoint, "--checkpoint", "--stage1")
    cfg = build_config(RetrievalConfig, config, set_, **opts)
    result = retrieve(cfg, overwrite=overwrite)
    entries = result["metrics"][cfg.split]
    console = make_console()
    _finished(console, result)
    for direction in sorted({k.split("/")[0] for k in entries}):
        r5, mean_ap = entries[f"{direction}/recall@5"], entries[f"{direction}/map"]
        console.print(f"{direction:16s} R@5 {_entry(entries, f'{direction}/recall@5')} "
                      f"(chance {r5['chance']:.3f})  "
                      f"mAP {_entry(entries, f'{direction}/map')} (chance {mean_ap['chance']:.3f})")
    console.print(f"{result['n_slides']} slides of split {cfg.split!r}; run directory: {result['run']}")
