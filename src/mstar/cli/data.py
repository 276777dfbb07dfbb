"""`mstar cohort tcga`: a stage-1 cohort from the real TCGA omics and reports tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app

cohort_app = typer.Typer(help="Build a cohort folder (manifest, RNA table) from tables users have.",
                         no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


@cohort_app.command("tcga")
def tcga(
    omics: Annotated[Path, typer.Option(
        "--omics", help="Folder of tcga_<cohort>.csv.gz omics tables (PORPOISE/MCAT).")],
    out: Annotated[Path, typer.Option(
        "--out", help="Folder to write (manifest.csv, rna.csv.gz, cohort.json).")],
    reports: Annotated[Optional[Path], typer.Option(
        "--reports", help="The reports table (case_id, text): counted per cohort.")] = None,
    test_fraction: Annotated[float, typer.Option(
        "--test-fraction", help="Held-out share of each cohort.")] = 0.2,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Validation share of each cohort.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the patient-level split.")] = 0,
    projects: Annotated[Optional[str], typer.Option(
        "--projects", help="Only these cohorts, e.g. BLCA,KIRC (each patient keeps the fold the whole "
                           "cohort gives it).")] = None,
) -> None:
    """Patients of the TCGA omics tables: cohort, slides, a patient-level split, and their RNA-seq."""
    from rich.table import Table

    from mstar.cli.options import make_console
    from mstar.data.tcga import build_tcga_cohort

    chosen = [p.strip() for p in projects.split(",") if p.strip()] if projects else None
    s = build_tcga_cohort(omics, reports, out, test_fraction, val_fraction, seed, chosen)
    table = Table(title=f"{s['patients']} patients, {s['genes']} genes -> {out}")
    for col in ("cohort", "patients", "report", "rna", "both", "train", "val", "test"):
        table.add_column(col)
    for label, c in s["cohorts"].items():
        keys = ("patients", "report", "rna", "both", "train", "val", "test")
        table.add_row(label, *(str(c[k]) for k in keys))
    make_console().print(table)
