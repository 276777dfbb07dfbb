"""`mstar train classify|survival`, `mstar evaluate`, `mstar compare`: supervised slide-level tasks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.cli.options import (
    BatchSize,
    Config,
    Epochs,
    Features,
    Lr,
    Manifest,
    Name,
    OldAggregator,
    Out,
    Overwrite,
    PathOpt,
    Reports,
    Seed,
    Set,
    SkipMissing,
    Stage1,
    build_config,
    deprecated,
    say_finished,
)

train_app = typer.Typer(help="Train a model on slide features and evaluate it with confidence intervals.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

Model = Annotated[Optional[str], typer.Option("--model", help="Aggregator (see `mstar models`).")]
MaxPatches = Annotated[Optional[int], typer.Option("--max-patches", help="Patches sampled per bag per step.")]
Runs = Annotated[Optional[int], typer.Option("--runs", help="Repeats with different seeds (mean ± sd).")]
Protocol = Annotated[Optional[str], typer.Option(
    "--protocol", help="clean (select on val, report test) or upstream (select on val ∪ test: optimistic).")]
TrainFraction = Annotated[Optional[float], typer.Option(
    "--train-fraction", help="Share of each unit's training cases used (low-label setting; seeded, "
    "stratified; val and test unchanged).")]


def print_selection(result: dict, metric: str) -> None:
    """The selection metric of every split with its CI, and where the run is."""
    from mstar.cli.options import make_console
    from mstar.eval.results import format_ci

    console = make_console()
    say_finished(result, "train again")
    for split in ("val", "test", "val+test"):
        entry = result["metrics"].get(split, {}).get(metric)
        if entry:
            extra = (f" (mean ± sd over units: {entry['value']:.3f} ± {entry['sd']:.3f})" if "sd" in entry
                     else "")
            console.print(f"{split:8s} {metric}: {format_ci(entry)}{extra}")
    console.print(f"run directory: {result['run']}  ({result['meta'].get('note', '')})")


def _run(task: str, **opts) -> None:
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    opts["stage1"] = deprecated(opts.pop("stage1"), opts.pop("aggregator"), "--aggregator", "--stage1")
    config, sets, overwrite = opts.pop("config"), opts.pop("set_"), opts.pop("overwrite")
    cfg = build_config(TrainConfig, config, sets, task=task, **opts)
    result = train_task(cfg, overwrite=overwrite)
    print_selection(result, result["meta"]["selection_metric"])


@train_app.command("classify")
def classify(manifest: Manifest = None, features: Features = None, config: Config = None, model: Model = None,
             stage1: Stage1 = None, epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None,
             max_patches: MaxPatches = None, runs: Runs = None, seed: Seed = None, protocol: Protocol = None,
             train_fraction: TrainFraction = None, out: Out = None, name: Name = None,
             skip_missing: SkipMissing = False,
             overwrite: Overwrite = False, set_: Set = None, aggregator: OldAggregator = None) -> None:
    """Slide/case classification (diagnosis, molecular status): cross-entropy, AUC/balanced accuracy/F1."""
    _run("classify", **locals())


@train_app.command("survival")
def survival(manifest: Manifest = None, features: Features = None, config: Config = None, model: Model = None,
             stage1: Stage1 = None, epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None,
             max_patches: MaxPatches = None, runs: Runs = None, seed: Seed = None, protocol: Protocol = None,
             train_fraction: TrainFraction = None, out: Out = None, name: Name = None,
             skip_missing: SkipMissing = False,
             overwrite: Overwrite = False, set_: Set = None, aggregator: OldAggregator = None) -> None:
    """Survival from slides: discrete-time NLL (4 bins), C-index with CIs, Kaplan-Meier risk groups."""
    _run("survival", **locals())


@app.command("evaluate")
def evaluate(
    run: Annotated[PathOpt, typer.Option("--run", help="Run directory (runs/<task>/<name>).")] = None,
    manifest: Annotated[PathOpt, typer.Option("--manifest", help="Cohort to evaluate on (every row is a test "
                                                                 "case).")] = None,
    features: Annotated[PathOpt, typer.Option(
        "--features", help="Features of that cohort (same encoder).")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Evaluation name (default: manifest stem).")] = None,
    skip_missing: SkipMissing = False, overwrite: Overwrite = False, config: Config = None, set_: Set = None,
) -> None:
    """Evaluate a trained run on another cohort (external validation), with CIs and figures."""
    from mstar.cli.options import rprint
    from mstar.eval.results import format_ci
    from mstar.tasks.evaluate import EvaluateConfig, evaluate_run

    cfg = build_config(EvaluateConfig, config, set_, run=run, manifest=manifest, features=features, name=name,
                       skip_missing=skip_missing)
    result = evaluate_run(cfg, overwrite=overwrite)
    say_finished(result, key="out")
    metric = result["selection_metric"]
    rprint(f"test {metric}: {format_ci(result['metrics']['test'][metric])}\noutputs: {result['out']}")


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Option("--run", help="Run directory; give exactly two (A, then B).")],
    split: Annotated[str, typer.Option("--split", help="Split whose predictions are compared.")] = "test",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of cases.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the result to this JSON file.")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw the differences with their CIs (a forest plot) to this PNG.")] = None,
) -> None:
    """Is run A better than run B? Paired bootstrap CI of A - B on the cases both predicted."""
    from rich.table import Table

    from mstar.cli.options import make_console
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
    console = make_console()
    console.print(table)
    if result["only_a"] or result["only_b"]:
        console.print(f"not compared: {result['only_a']} cases only in A, {result['only_b']} only in B")
    if json_out:
        write_json(json_out, result)
    if plot:
        from mstar.eval.plots import plot_paired_differences

        plot_paired_differences(result["metrics"], plot, title=f"{split}, {result['n']} cases: A = "
                                f"{runs[0].name}, B = {runs[1].name}")
        console.print(f"figure: {plot}")


@train_app.command("report")
def report(
    manifest: Manifest = None, features: Features = None, reports: Reports = None, config: Config = None,
    stage1: Annotated[PathOpt, typer.Option("--stage1", help="Stage-1 checkpoint whose proj initialises the "
                                                             "WSI mapping.")] = None,
    neighbour_embeddings: Annotated[PathOpt, typer.Option(
        "--neighbour-embeddings", help="`mstar embed` file (slides + reports) of a stage-1 model pretrained "
                                       "on this training split: the consensus neighbours are the training "
                                       "reports nearest each slide's embedding (default: pooled features).")
    ] = None,
    epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None, seed: Seed = None, out: Out = None,
    name: Name = None, skip_missing: SkipMissing = False, overwrite: Overwrite = False, set_: Set = None,
    aggregator: OldAggregator = None,
) -> None:
    """Report generation (HistGen-style): BLEU-1..4, METEOR, ROUGE-L, CIDEr and clinical accuracy."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite", "aggregator")}
    opts["stage1"] = deprecated(stage1, aggregator, "--aggregator", "--stage1")
    from mstar.cli.options import make_console
    from mstar.run.fingerprint import environment_rank
    from mstar.tasks.report_config import ReportConfig
    from mstar.tasks.report_task import train_report

    result = train_report(build_config(ReportConfig, config, set_, **opts), overwrite=overwrite,
                          progress=True)
    if environment_rank() != 0:
        return  # rank 0 reports
    console = make_console()
    say_finished(result, "train again")
    for split in ("test", "test_generator", "test_baseline"):  # generator: before the consensus re-ranking
        s = result.get(split)
        if s:
            console.print(f"{split:14s} BLEU-4 {s['bleu_4']:.3f}  ROUGE-L {s['rouge_l']:.3f}"
                          + (f"  METEOR {s['meteor']:.3f}" if "meteor" in s else "")
                          + (f"  cancer type stated correctly {s['cancer_type_accuracy']:.2f}"
                             + (f" (majority class {s['cancer_type_majority']:.2f})"
                                if s.get("cancer_type_majority") is not None else "")
                             if s.get("cancer_type_accuracy") is not None else "  cancer type: cannot judge"))
    consensus = result.get("consensus") or {}
    if consensus.get("k"):
        where = ("stage-1 retrieval, " + consensus["source"] if consensus.get("space") == "stage1"
                 else "pooled patch features")
        console.print(f"re-ranked by the consensus of {consensus['k']} training reports ({where})"
                      + _replaced_share(result["run"]))
    init = result.get("stage1_init")
    if init:
        seen = f"; it was trained on {init['saw_heldout']} val/test slides" if init["saw_heldout"] else ""
        console.print(f"WSI mapping initialised from the stage-1 projection of {init['checkpoint']}{seen}")
    console.print(f"run directory: {result['run']} (best epoch {result['best_epoch']} by validation BLEU-4)")


def _replaced_share(run: str) -> str:
    """``; a neighbour's report replaced the generated one for 11 of 11 test slides`` (predictions.csv)."""
    import pandas as pd

    path = Path(run) / "predictions.csv"
    if not path.is_file():
        return ""
    table = pd.read_csv(path, keep_default_na=False)
    if not {"split", "generated", "generator"} <= set(table.columns):
        return ""
    test = table[table["split"] == "test"]
    replaced = int((test["generated"] != test["generator"]).sum())
    return f"; a neighbour's report replaced the generated one for {replaced} of {len(test)} test slides"


@app.command("generate")
def generate(
    run: Annotated[PathOpt, typer.Option("--run", help="Report run directory (runs/report/<name>).")] = None,
    slide: Annotated[Optional[list[str]], typer.Option(
        "--slide", help="Slide id (repeatable; default: every slide of the features folder).")] = None,
    features: Annotated[PathOpt, typer.Option(
        "--features", help="Features folder (default: the run's).")] = None,
    beam_size: Annotated[Optional[int], typer.Option(
        "--beam-size", help="Beam width (default: the run's).")] = None,
    embeddings: Annotated[PathOpt, typer.Option(
        "--embeddings", help="`mstar embed` file of these slides, for runs trained with "
                             "--neighbour-embeddings (default: the run's file).")] = None,
    out: Out = None, name: Name = None, overwrite: Overwrite = False, config: Config = None, set_: Set = None,
) -> None:
    """Generate pathology reports of slides; print them and write <out>/generate/<name>/generated.csv."""
    from mstar.tasks.report_config import GenerateConfig
    from mstar.tasks.report_task import generate as run_generate

    cfg = build_config(GenerateConfig, config, set_, run=run, slides=slide, features=features,
                       beam_size=beam_size, embeddings=embeddings, out=out, name=name)
    result = run_generate(cfg, overwrite=overwrite)
    say_finished(result, "generate again", stderr=True)
    for sid, text in result["reports"].items():
        print(text if len(result["reports"]) == 1 else f"{sid}: {text}")
    print(f"run directory: {result['run']}", file=sys.stderr)
