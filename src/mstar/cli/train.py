"""`mstar train classify|survival`, `mstar evaluate`, `mstar compare`: supervised slide-level tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app

train_app = typer.Typer(help="Train a model on slide features and evaluate it with confidence intervals.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

Manifest = Annotated[Optional[Path], typer.Option("--manifest", help="Cohort CSV in an upstream schema.")]
Features = Annotated[Optional[Path], typer.Option("--features", help="Folder of <slide>.h5/.pt features.")]
Config = Annotated[Optional[Path], typer.Option("--config", help="YAML with any training setting.")]
Model = Annotated[Optional[str], typer.Option("--model", help="Aggregator (see `mstar models`).")]
Aggregator = Annotated[Optional[Path], typer.Option("--aggregator",
                                                    help="Stage-1 checkpoint initialising TransMIL (mSTAR+).")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Bags per training step.")]
MaxPatches = Annotated[Optional[int], typer.Option("--max-patches", help="Patches sampled per bag per step.")]
Runs = Annotated[Optional[int], typer.Option("--runs", help="Repeats with different seeds (mean ± sd).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
Protocol = Annotated[Optional[str], typer.Option(
    "--protocol", help="clean (select on val, report test) or upstream (select on val ∪ test: optimistic).")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Runs folder (runs/<task>/<name>/ inside).")]
Name = Annotated[Optional[str], typer.Option("--name", help="Run name (default: <manifest>-<model>).")]
SkipMissing = Annotated[bool, typer.Option("--skip-missing", help="Drop cases without (or with empty) features.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start the run again instead of resuming it.")]
Set = Annotated[Optional[list[str]], typer.Option("--set", help="Any setting as key=value (YAML value).")]


def _run(task: str, **opts) -> None:
    from rich.console import Console

    from mstar.eval.results import format_ci
    from mstar.tasks.config import load_config, parse_override
    from mstar.tasks.runner import train_task

    overrides = dict(parse_override(s) for s in (opts.pop("set_") or []))
    overwrite = opts.pop("overwrite")
    config = opts.pop("config")
    for key, value in opts.items():
        if value is not None and value is not False:
            overrides[key] = str(value) if isinstance(value, Path) else value
    cfg = load_config(config, {"task": task, **overrides})
    result = train_task(cfg, overwrite=overwrite)
    console = Console()
    metric = result["meta"]["selection_metric"]
    for split in ("val", "test", "val+test"):
        entry = result["metrics"].get(split, {}).get(metric)
        if entry:
            extra = f" (mean ± sd over units: {entry['value']:.3f} ± {entry['sd']:.3f})" if "sd" in entry else ""
            console.print(f"{split:8s} {metric}: {format_ci(entry)}{extra}")
    console.print(f"run directory: {result['run']}  ({result['meta']['note']})")


@train_app.command("classify")
def classify(manifest: Manifest = None, features: Features = None, config: Config = None, model: Model = None,
             aggregator: Aggregator = None, epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None,
             max_patches: MaxPatches = None, runs: Runs = None, seed: Seed = None, protocol: Protocol = None,
             out: Out = None, name: Name = None, skip_missing: SkipMissing = False, overwrite: Overwrite = False,
             set_: Set = None) -> None:
    """Slide/case classification (diagnosis, molecular status): cross-entropy, AUC/balanced accuracy/F1."""
    _run("classify", **locals())


@train_app.command("survival")
def survival(manifest: Manifest = None, features: Features = None, config: Config = None, model: Model = None,
             aggregator: Aggregator = None, epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None,
             max_patches: MaxPatches = None, runs: Runs = None, seed: Seed = None, protocol: Protocol = None,
             out: Out = None, name: Name = None, skip_missing: SkipMissing = False, overwrite: Overwrite = False,
             set_: Set = None) -> None:
    """Survival from slides: discrete-time NLL (4 bins), C-index with CIs, Kaplan-Meier risk groups."""
    _run("survival", **locals())


@app.command("heatmap")
def heatmap(
    run: Annotated[Path, typer.Option("--run", help="Run directory (runs/<task>/<name>).")],
    slide: Annotated[str, typer.Option("--slide", help="Slide id (file name without suffix).")],
    unit: Annotated[Optional[str], typer.Option("--unit", help="Which fold/run's model (default: first).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Number of top tiles in the grid.")] = 16,
    features: Annotated[Optional[Path], typer.Option("--features", help="Features folder (default: the run's).")] = None,
) -> None:
    """Attention / per-patch evidence heatmap over the slide thumbnail, plus the top-k tiles."""
    from rich import print as rprint

    from mstar.tasks.heatmap import slide_heatmap

    result = slide_heatmap(run, slide, unit, top_k, features)
    rprint(f"{result['score']} heatmap: {result['heatmap']}\ntop tiles: {result['top_tiles']}")


@app.command("evaluate")
def evaluate(
    run: Annotated[Path, typer.Option("--run", help="Run directory (runs/<task>/<name>).")],
    manifest: Annotated[Path, typer.Option("--manifest", help="Cohort to evaluate on (every row is a test case).")],
    features: Annotated[Path, typer.Option("--features", help="Features of that cohort (same encoder).")],
    name: Annotated[Optional[str], typer.Option("--name", help="Evaluation name (default: manifest stem).")] = None,
    skip_missing: SkipMissing = False,
) -> None:
    """Evaluate a trained run on another cohort (external validation), with CIs and figures."""
    from rich import print as rprint

    from mstar.eval.results import format_ci
    from mstar.tasks.evaluate import evaluate_run

    result = evaluate_run(run, manifest, features, name, skip_missing)
    metric = result["selection_metric"]
    rprint(f"test {metric}: {format_ci(result['metrics']['test'][metric])}\noutputs: {result['out']}")


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Option("--run", help="Run directory; give exactly two (A, then B).")],
    split: Annotated[str, typer.Option("--split", help="Split whose predictions are compared.")] = "test",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of cases.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the result to this JSON file.")] = None,
) -> None:
    """Is run A better than run B? Paired bootstrap CI of A - B on the cases both predicted."""
    from rich.console import Console
    from rich.table import Table

    from mstar.errors import MstarError
    from mstar.eval.compare import compare_runs
    from mstar.eval.results import format_ci
    from mstar.tasks.run_files import write_json

    if len(runs) != 2:
        raise MstarError(f"compare needs exactly two --run options (A and B); got {len(runs)}")
    result = compare_runs(runs[0], runs[1], split, bootstrap, seed)
    table = Table(title=f"{split}: A = {runs[0].name}, B = {runs[1].name}, {result['n']} common cases "
                        f"(paired bootstrap, {bootstrap} resamples)")
    for col in ("metric", "A", "B", "A - B [95% CI]", "verdict"):
        table.add_column(col)
    for name, m in result["metrics"].items():
        d = m["difference"]
        verdict = "A better" if d["ci_low"] > 0 else "B better" if d["ci_high"] < 0 else "no clear difference"
        table.add_row(name, f"{m['a']:.3f}", f"{m['b']:.3f}", format_ci(d), verdict)
    console = Console()
    console.print(table)
    if result["only_a"] or result["only_b"]:
        console.print(f"not compared: {result['only_a']} cases only in A, {result['only_b']} only in B")
    if json_out:
        write_json(json_out, result)


@train_app.command("report")
def report(
    manifest: Manifest = None, features: Features = None,
    reports: Annotated[Optional[Path], typer.Option("--reports", help="JSON {slide_id: report text}.")] = None,
    config: Config = None, aggregator: Annotated[Optional[Path], typer.Option(
        "--aggregator", help="Stage-1 checkpoint whose proj initialises the WSI mapping.")] = None,
    epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None, seed: Seed = None, out: Out = None,
    name: Name = None, skip_missing: SkipMissing = False, overwrite: Overwrite = False, set_: Set = None,
) -> None:
    """Report generation (HistGen-style): BLEU-1..4, METEOR, ROUGE-L, CIDEr and clinical accuracy."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite")}
    from rich.console import Console

    from mstar.tasks.config import load_config, parse_override
    from mstar.tasks.report_config import ReportConfig
    from mstar.tasks.report_task import train_report

    overrides = dict(parse_override(s) for s in (set_ or []))
    overrides.update({k: str(v) if isinstance(v, Path) else v for k, v in opts.items()
                      if v is not None and v is not False})
    result = train_report(load_config(config, overrides, base=ReportConfig), overwrite=overwrite)
    console = Console()
    for split in ("test", "test_baseline"):
        s = result.get(split)
        if s:
            console.print(f"{split:14s} BLEU-4 {s['bleu_4']:.3f}  ROUGE-L {s['rouge_l']:.3f}"
                          + (f"  METEOR {s['meteor']:.3f}" if "meteor" in s else "")
                          + (f"  cancer type stated correctly {s['cancer_type_accuracy']:.2f}"
                             if s.get("cancer_type_accuracy") is not None else ""))
    console.print(f"run directory: {result['run']} (best epoch {result['best_epoch']} by validation BLEU-4)")


@app.command("generate")
def generate(
    run: Annotated[Path, typer.Option("--run", help="Report run directory (runs/report/<name>).")],
    slide: Annotated[str, typer.Option("--slide", help="Slide id (file name without suffix).")],
    features: Annotated[Optional[Path], typer.Option("--features", help="Features folder (default: the run's).")] = None,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", help="Beam width (default: the run's).")] = None,
) -> None:
    """Print the generated pathology report of one slide."""
    from mstar.tasks.report_task import generate_for_run

    print(generate_for_run(run, slide, features, beam_size))
