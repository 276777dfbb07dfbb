"""`mstar zero-shot`, `mstar few-shot`, `mstar retrieve`: using a stage-1 model without (or with few) labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.errors import MstarError

Checkpoint = Annotated[Path, typer.Option("--checkpoint", help="Stage-1 checkpoint (runs/pretrain/<name>/"
                                                               "checkpoints/stage1.pt).")]
Prompts = Annotated[str, typer.Option("--prompts", help="Prompt JSON {\"0\": {classnames, templates}} or a "
                                                        "packaged set (synthetic_cancer_type).")]
Manifest = Annotated[Path, typer.Option("--manifest", help="Cohort CSV (case,slide,label,fold).")]
Features = Annotated[Path, typer.Option("--features", help="Folder of <slide>.h5/.pt patch features.")]
LabelColumn = Annotated[str, typer.Option("--label-column", help="Label column (auto: label, else study).")]
Js = Annotated[str, typer.Option("--js", help="Top-j pooling sizes (patches per class), comma-separated.")]
TopJ = Annotated[Optional[int], typer.Option("--top-j", help="Fix j instead of choosing it on the val split.")]
Temperature = Annotated[float, typer.Option("--temperature", help="Softmax temperature of the probabilities.")]
Bootstrap = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples of the CIs.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Out = Annotated[Path, typer.Option("--out", help="Runs folder (runs/<task>/<name>/ inside).")]
Name = Annotated[Optional[str], typer.Option("--name", help="Run name (default from the manifest).")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
TextEncoder = Annotated[Optional[Path], typer.Option("--text-encoder",
                                                     help="Text model folder, if moved since pretraining.")]
SkipMissing = Annotated[bool, typer.Option("--skip-missing", help="Drop cases without (or with empty) features.")]
ALL_METHODS = "text_prototypes,simpleshot,linear_probe"


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MstarError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise MstarError(f"{option}: values must be positive integers, got {text!r}")
    return values


def _entry(metrics: dict, key: str) -> str:
    from mstar.eval.results import format_ci

    return format_ci(metrics[key]) if key in metrics else "n/a"


@app.command("zero-shot")
def zero_shot_cmd(
    checkpoint: Checkpoint, prompts: Prompts, manifest: Manifest, features: Features,
    label_column: LabelColumn = "auto", js: Js = "1,5,10,50,100", top_j: TopJ = None,
    temperature: Temperature = 0.07, bootstrap: Bootstrap = 1000, seed: Seed = 0,
    heatmaps: Annotated[int, typer.Option("--heatmaps", help="Test slides with a similarity heatmap (0: none).")] = 4,
    out: Out = Path("runs"), name: Name = None, device: Device = "auto", text_encoder: TextEncoder = None,
    skip_missing: SkipMissing = False,
) -> None:
    """Zero-shot slide classification from text prompts (patch top-j and slide-embedding scoring)."""
    from rich.console import Console

    from mstar.zeroshot.zero_shot import zero_shot

    result = zero_shot(checkpoint, prompts, manifest, features, out=out, name=name, js=_ints(js, "--js"),
                       top_j=top_j, label_column=label_column, temperature=temperature, bootstrap=bootstrap,
                       seed=seed, heatmaps=heatmaps, device=device, text_encoder=text_encoder,
                       skip_missing=skip_missing)
    test, n_c = result["metrics"]["test"], len(result["classes"])
    console = Console()
    for key in ("slide", "patch"):
        label = f"{key} (j={result['chosen_j']}, from {result['j_source']})" if key == "patch" else key
        console.print(f"test {label:28s} balanced acc. {_entry(test, f'{key}/balanced_accuracy')}  "
                      f"AUC {_entry(test, f'{key}/auc_macro')}  (chance {1 / n_c:.3f})")
    console.print(f"run directory: {result['run']}")


@app.command("few-shot")
def few_shot_cmd(
    checkpoint: Checkpoint, prompts: Prompts, manifest: Manifest, features: Features,
    shots: Annotated[str, typer.Option("--shots", help="Support slides per class, comma-separated.")] = "1,2,4,8",
    runs: Annotated[int, typer.Option("--runs", help="Seeded support draws per k.")] = 10,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated subset of text_prototypes, "
                                                           "simpleshot, linear_probe.")] = ALL_METHODS,
    top_patches: Annotated[int, typer.Option("--top-patches", help="Support patches per text prototype.")] = 100,
    label_column: LabelColumn = "auto", js: Js = "1,5,10,50,100", top_j: TopJ = None,
    temperature: Temperature = 0.07, seed: Seed = 0, out: Out = Path("runs"), name: Name = None,
    device: Device = "auto", text_encoder: TextEncoder = None, skip_missing: SkipMissing = False,
) -> None:
    """Few-shot slide classification: text-guided prototypes, SimpleShot and a linear probe vs k."""
    from rich.console import Console
    from rich.table import Table

    from mstar.zeroshot.few_shot import few_shot

    result = few_shot(checkpoint, prompts, manifest, features, shots=_ints(shots, "--shots"), runs=runs,
                      methods=[m.strip() for m in methods.split(",") if m.strip()], out=out, name=name,
                      js=_ints(js, "--js"), top_j=top_j, top_patches=top_patches, label_column=label_column,
                      temperature=temperature, seed=seed, device=device, text_encoder=text_encoder,
                      skip_missing=skip_missing)
    summary = result["summary"]
    table = Table(title=f"test balanced accuracy, median [IQR] over {runs} draws")
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
    console = Console()
    console.print(table)
    console.print(f"run directory: {result['run']}")


@app.command("retrieve")
def retrieve_cmd(
    checkpoint: Checkpoint, manifest: Manifest, features: Features,
    reports: Annotated[Optional[Path], typer.Option("--reports", help="Reports JSON {slide_or_case: text}.")] = None,
    rna: Annotated[Optional[Path], typer.Option("--rna", help="RNA table or folder of per-case CSVs.")] = None,
    rna_layout: Annotated[str, typer.Option("--rna-layout", help="auto, genes_x_cases, cases_x_genes, wide, "
                                                                 "per_case.")] = "auto",
    split: Annotated[str, typer.Option("--split", help="Split to retrieve within: test, val, train or all.")] = "test",
    label_column: LabelColumn = "auto", bootstrap: Bootstrap = 1000, seed: Seed = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Slides per forward pass.")] = 8,
    out: Out = Path("runs"), name: Name = None, device: Device = "auto", text_encoder: TextEncoder = None,
    skip_missing: SkipMissing = False,
) -> None:
    """Slide↔report, slide↔gene and slide→slide retrieval: Recall@1/5/10/50 and mAP with CIs."""
    from rich.console import Console

    from mstar.zeroshot.retrieve import retrieve

    result = retrieve(checkpoint, manifest, features, reports=reports, rna=rna, rna_layout=rna_layout, split=split,
                      label_column=label_column, out=out, name=name, bootstrap=bootstrap, seed=seed,
                      batch_size=batch_size, device=device, text_encoder=text_encoder, skip_missing=skip_missing)
    entries = result["metrics"][split]
    console = Console()
    for direction in sorted({k.split("/")[0] for k in entries}):
        r5, mean_ap = entries[f"{direction}/recall@5"], entries[f"{direction}/map"]
        console.print(f"{direction:16s} R@5 {_entry(entries, f'{direction}/recall@5')} (chance {r5['chance']:.3f})  "
                      f"mAP {_entry(entries, f'{direction}/map')} (chance {mean_ap['chance']:.3f})")
    console.print(f"{result['n_slides']} slides of split {split!r}; run directory: {result['run']}")
