"""Commands of the features stage: `mstar extract`, `mstar encoders`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mstar.cli import app
from mstar.cli.options import report_failures


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Compile(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


ENCODER_HELP = "Encoder name (`mstar encoders`), timm:<model>, or a stage-2 checkpoint's name."
CHECKPOINT_HELP = "Local weights (.pth/.bin/.safetensors), loaded strictly; nothing is downloaded."
WORKERS_HELP = "Processes reading tiles (default: up to 8 on GPU; on CPU 0 with <= 4 cores, else 2)."
PRECISION_HELP = ("Precision: auto (default: the encoder's on GPU; on the CPU bf16 where it runs "
                  "natively and faster than fp32, else fp32), fp32, bf16, fp16.")
COMPILE_HELP = ("torch.compile the encoder (~45 s once, then ~1.1x on the CPU in bf16): auto (default: on "
                "the CPU in bf16 for >= 2,000 tiles when a C++ compiler is present), on, off.")
DEVICE_HELP = "cpu, cuda, or auto (CUDA when available)."
THREADS_HELP = "Torch threads for the CPU forward (default: torch's)."
SLIDES_HELP = "Folder of the slides when the tiles files' slide paths moved (or for CLAM coords)."


@app.command("extract")
def extract(
    root: Annotated[Path, typer.Argument(help="Work folder holding tiles/ (from `mstar tile --out`).")],
    encoder: Annotated[str, typer.Option("--encoder", help=ENCODER_HELP)],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help=CHECKPOINT_HELP)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per forward pass.")] = 64,
    workers: Annotated[int | None, typer.Option("--workers", min=0, help=WORKERS_HELP)] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help=THREADS_HELP)] = None,
    precision: Annotated[Precision | None, typer.Option("--precision", help=PRECISION_HELP)] = None,
    device: Annotated[Device, typer.Option("--device", help=DEVICE_HELP)] = Device.auto,
    compile_mode: Annotated[Compile, typer.Option("--compile", help=COMPILE_HELP)] = Compile.auto,
    save_pt: Annotated[bool, typer.Option("--save-pt", help="Also write pt_files/<encoder>/<slide>.pt "
                                                            "(upstream mSTAR / CLAM layout).")] = False,
    slides: Annotated[Path | None, typer.Option("--slides", help=SLIDES_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo slides that have features.")] = False,
    skip_errors: Annotated[bool, typer.Option("--skip-errors", help="Go on past unreadable slides.")] = False,
    scan: Annotated[Path | None, typer.Option(
        "--scan", help="Hierarchical scan: a run trained on the low-power features "
                       "(ROOT/scan/features/<enc>) ranks regions; only the top --keep-fraction of tiles is "
                       "embedded.")] = None,
    keep_fraction: Annotated[float, typer.Option("--keep-fraction", help="Share of each slide's tiles "
                                                 "embedded after the scan.")] = 0.25,
    scan_mpp: Annotated[float | None, typer.Option(
        "--scan-mpp", help="µm/px of the low-power pass (default: 2; with --scan, the µm/px the scan run was "
                           "trained on).")] = None,
    scan_only: Annotated[bool, typer.Option(
        "--scan-only", help="Only the low-power pass (ROOT/scan/features/<enc>), to train a scan run "
                            "on.")] = False,
    context_mpp: Annotated[float | None, typer.Option(
        "--context-mpp", help="Multi-resolution: also embed the slides at this µm/px and write "
                              "features/<enc>-ctx<mpp>/ (each tile with its low-power context).")] = None,
) -> None:
    """Extract patch features: tiles/<slide>.h5 -> features/<encoder>/<slide>.h5 (+ summary.csv); with --scan,
    a low-power pass first and only the top regions at high power (ROOT/scan/keep<pct>/features/<enc>)."""
    from mstar.cli.options import plural, rprint
    from mstar.features.encoders import folder_name
    from mstar.features.extract import extract_features

    if scan_only:
        from mstar.features.context import low_power_pass

        scan_mpp = 2.0 if scan_mpp is None else scan_mpp
        low = low_power_pass(root, encoder, scan_mpp, checkpoint=checkpoint, batch_size=batch_size,
                             skip_errors=skip_errors, precision=precision.value if precision else None)
        rprint(f"[bold]low-power pass[/bold] at {scan_mpp:g} µm/px: features in {low}")
        return
    if scan is not None:
        from mstar.predict.scan import hierarchical_scan

        result = hierarchical_scan(root, encoder, scan, keep_fraction, scan_mpp, checkpoint=checkpoint,
                                   batch_size=batch_size, skip_errors=skip_errors,
                                   precision=precision.value if precision else None)
        table = result["summary"]
        rprint(f"[bold]scanned[/bold] {plural(len(table), 'slide')} at {result['scan_mpp']:g} µm/px; "
               "embedded "
               f"{int(table['kept'].sum())} of {int(table['tiles'].sum())} tiles; bags in "
               f"{result['features']}")
        return

    summary = extract_features(root, encoder, checkpoint=checkpoint, batch_size=batch_size, workers=workers,
                               precision=precision.value if precision else None, device=device.value,
                               save_pt=save_pt, overwrite=overwrite, skip_errors=skip_errors,
                               slides_dir=slides, threads=threads, compile_mode=compile_mode.value)
    if summary.empty:
        return
    folder = Path(root) / "features" / folder_name(encoder)
    counts = ", ".join(f"{v} {k}" for k, v in summary["status"].value_counts().to_dict().items())
    reused = int(((summary["status"] == "ok") & summary["seconds"].isna()).sum())  # finished before
    done = f" ({reused} reused from an earlier run)" if reused else ""
    rprint(f"[bold]extracted[/bold] {plural(len(summary), 'slide')}{done} with {encoder}: "
           f"{int(summary['n_tiles'].sum())} tiles; {counts}; summary in {folder}/summary.csv")
    report_failures(summary, "slide", f"{folder}/summary.csv")
    if context_mpp is not None:
        from mstar.features.context import low_power_pass, write_context_folder

        low = low_power_pass(root, encoder, context_mpp, checkpoint=checkpoint, batch_size=batch_size,
                             skip_errors=skip_errors, precision=precision.value if precision else None)
        out = Path(root) / "features" / f"{folder.name}-ctx{context_mpp:g}"
        written = write_context_folder(folder, low, out)
        rprint(f"[bold]multi-resolution[/bold]: {plural(len(written), 'slide')} with {context_mpp:g} µm/px "
               "context in "
               f"{out} (train with --set context=true)")


@app.command("encoders")
def encoders() -> None:
    """List the patch encoders, their input contract and the weights file each needs."""
    from rich.table import Table

    from mstar.cli.options import make_console
    from mstar.features.encoders import list_encoders

    console = make_console()
    table = Table(title="patch encoders", title_justify="left")
    for col in ("name", "dim", "input px", "mean/std", "µm/px", "GPU", "--checkpoint"):
        table.add_column(col, no_wrap=col == "name")
    about = []
    for spec in list_encoders():
        p = spec.preprocess
        norm = "ImageNet" if p.mean == (0.485, 0.456, 0.406) else f"{p.mean}/{p.std}"
        table.add_row(spec.name, str(spec.dim), str(p.input_px), norm, f"{p.target_mpp:g}", p.precision,
                      spec.checkpoint_hint or "-")
        about.append(f"  {spec.name}: {spec.description}")
    table.add_row("timm:<model>", "model's", "model's", "model's", "0.5", "bf16", "optional")
    about.append("  timm:<model>: any timm model, seeded random init unless --checkpoint "
                 "(tests and demo: timm:test_vit)")
    about.append("  <name>: a stage-2 encoder (mstar self-train), --checkpoint RUN/encoder/<name>.pth with "
                 "its <name>.json sidecar beside it (docs/extraction.md)")
    console.print(table)
    console.print("\n".join(about), highlight=False)
