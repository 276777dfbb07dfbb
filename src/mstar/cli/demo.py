"""`mstar demo`: the whole pipeline on a synthetic cohort."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mstar.cli import app


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for everything the demo writes.")] = Path("demo_out"),
    cases: Annotated[int, typer.Option("--cases", min=12, help="Synthetic cases to generate.")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the cohort and of training.")] = 0,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Worker processes.")] = min(2, os.cpu_count() or 1),
) -> None:
    """Run every stage on a synthetic cohort (offline, CPU) and print a summary table."""
    from rich.table import Table

    from mstar.cli.options import make_console
    from mstar.demo import DemoContext, run_demo

    console = make_console()
    ctx = DemoContext(out=out, cases=cases, seed=seed, workers=workers)
    results = run_demo(ctx, on_step=lambda r: console.print(f"[green]done[/green] {r.name} "
                                                            f"({r.seconds:.1f} s)"))
    table = Table(title=f"mstar demo: {out}")
    for col in ("stage", "seconds", "outputs", "key numbers"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.name, f"{r.seconds:.1f}", r.output, r.numbers)
    console.print(table)
    console.print(f"total {sum(r.seconds for r in results):.0f} s")
