"""Options shared by the commands, defined once, and the one path from options to a config.

Vocabulary (the same word means the same thing in every command):

- ``--out``: the runs folder; a command's run folder is ``<out>/<kind>/<name>`` (``--name``). ``mstar synth``
  and ``mstar tile`` write a data folder (a cohort, a work folder), not runs;
- ``--stage1``: a stage-1 checkpoint (``runs/pretrain/<name>/checkpoints/stage1.pt``);
- ``--checkpoint``: patch-encoder weights (``mstar extract``, ``mstar self-train``);
- ``--config``: a YAML of settings (a run folder's ``config.yaml`` re-runs it); ``--set key=value``: any
  setting, converted to its type.

Old spellings (``--aggregator``, ``--checkpoint`` for a stage-1 checkpoint, ``embed --out FILE.h5``) still
work for one release and print a deprecation line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mstar.run.config import RunConfig, parse_override

PathOpt = Optional[Path]


def make_console():
    """The console commands print to: long lines are not wrapped (the terminal wraps them), so a printed
    path or command can be copied as it is."""
    from rich.console import Console

    return Console(soft_wrap=True)


def plural(n: int, word: str) -> str:
    """``1 slide``, ``2 slides``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def rprint(*objects: Any) -> None:
    """Print with rich markup to :func:`make_console`."""
    make_console().print(*objects)


Config = Annotated[PathOpt, typer.Option(
    "--config", help="YAML with any setting (a run's config.yaml re-runs it).")]
Set = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Any setting as key=value (YAML value), repeatable.")]
Out = Annotated[PathOpt, typer.Option("--out", help="Runs folder: the run folder is <out>/<kind>/<name>.")]
Name = Annotated[Optional[str], typer.Option("--name", help="Run name (default from the inputs).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the run folder instead of resuming it.")]
Manifest = Annotated[PathOpt, typer.Option(
    "--manifest", help="Cohort CSV (case,slide,label,fold or another schema).")]
Features = Annotated[PathOpt, typer.Option("--features", help="Folder of <slide>.h5/.pt patch features.")]
Stage1 = Annotated[PathOpt, typer.Option(
    "--stage1", help="Stage-1 checkpoint (runs/pretrain/<name>/checkpoints/stage1.pt).")]
OldAggregator = Annotated[PathOpt, typer.Option("--aggregator", hidden=True, help="Deprecated: --stage1.")]
OldCheckpoint = Annotated[PathOpt, typer.Option("--checkpoint", hidden=True, help="Deprecated: --stage1.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
SkipMissing = Annotated[bool, typer.Option(
    "--skip-missing", help="Drop cases without (or with empty) features.")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Items per training step.")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
TextEncoder = Annotated[PathOpt, typer.Option(
    "--text-encoder", help="Text model folder, if moved since pretraining.")]
LabelColumn = Annotated[Optional[str], typer.Option(
    "--label-column", help="Label column (auto: label, else study).")]
Reports = Annotated[PathOpt, typer.Option("--reports", help="Reports: JSON {slide_or_case: text}, or a "
                                         "CSV/TSV table (case_id, text) of raw OCR, prepared on reading.")]
TextCache = Annotated[PathOpt, typer.Option("--text-cache", help="Folder keeping a frozen text encoder's "
                                            "report states (its read-out) across runs (encode each report "
                                            "once).")]
Rna = Annotated[PathOpt, typer.Option("--rna", help="RNA table (genes x cases, cases x genes) or a folder of "
                                                     "per-case Gene,Value CSVs.")]


def deprecated(new: Any, old: Any, old_flag: str, new_flag: str) -> Any:
    """``new``, or ``old`` (with a deprecation line on stderr) when only the old spelling was given."""
    if old is None or old is False:
        return new
    print(f"warning: {old_flag} is deprecated and will be removed in mstar 0.3; use {new_flag}",
          file=sys.stderr)
    return new if new is not None else old


def build_config(cls: type[RunConfig], config: Path | None, sets: list[str] | None,
                 keep_false: tuple[str, ...] = (), **options: Any) -> RunConfig:
    """Defaults < ``--config`` YAML < ``--set`` < explicit options, converted and validated.

    Options left at ``None`` (and ``False`` for plain on/off flags, unless listed in ``keep_false``) were not
    given and leave the YAML or default value alone.
    """
    overrides = dict(parse_override(s) for s in (sets or []))
    for key, value in options.items():
        if value is None or (value is False and key not in keep_false):
            continue
        overrides[key] = str(value) if isinstance(value, Path) else value
    return cls.load(str(config) if config else None, overrides)


def say_finished(result: dict, again: str = "redo it", key: str = "run", stderr: bool = False) -> None:
    """The one line of a command that found its run already finished (``result["finished_before"]``): the
    folder (``result[key]``) and how to redo it; on stderr where stdout carries the output itself."""
    if not result.get("finished_before"):
        return
    line = f"{result[key]}: already finished with these settings and inputs (pass --overwrite to {again})"
    if stderr:
        print(line, file=sys.stderr)
    else:
        make_console().print(line, markup=False)


def report_failures(summary, what: str, where: str, name_column: str = "slide") -> None:
    """One ``error`` line per failed item of a ``--skip-errors`` batch (its ``name_column`` and error), then
    :func:`fail_if_every_item_failed`."""
    for _, row in summary[summary["status"] == "error"].iterrows():
        rprint(f"  [red]error[/red] {row[name_column]}: {row['error']}")
    fail_if_every_item_failed(summary, what, where)


def fail_if_every_item_failed(summary, what: str, where: str) -> None:
    """``--skip-errors`` goes on past bad items, but a batch in which *every* item failed is not a success:
    a one-line error (exit status 1) naming the first failure and the summary file."""
    from mstar.errors import MstarError

    failed = summary[summary["status"] == "error"]
    if len(summary) and len(failed) == len(summary):
        first = failed.iloc[0]
        name = first.get("path") or first.get("slide_path") or first["slide"]
        raise MstarError(f"every {what} failed ({len(failed)}), the first: {name}: {first['error']}; "
                         f"see {where}")
