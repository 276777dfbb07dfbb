"""Commands of the slide stage: `mstar synth`, `mstar tile`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mstar.cli import app
from mstar.cli.options import report_failures


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the cohort into.")],
    cases: Annotated[int, typer.Option("--cases", min=3, help="Number of cases (patients).")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the cohort is a function of it.")] = 0,
    n_types: Annotated[int, typer.Option("--types", min=2, max=3, help="Number of cancer types.")] = 3,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes rendering slides.")] = 1,
) -> None:
    """Generate the synthetic multimodal cohort (slides, reports, RNA-seq, survival, manifests)."""
    from mstar.cli.options import rprint
    from mstar.data.synthetic import SynthConfig, make_cohort

    summary = make_cohort(out, SynthConfig(cases=cases, seed=seed, n_types=n_types), workers=workers)
    rprint(f"[bold]synthetic cohort[/bold] in {summary['out']}: {summary['cases']} cases, "
           f"{summary['slides']} slides, "
           f"{summary['reports']} reports, RNA for {summary['rna_cases']} cases x {summary['genes']} genes, "
           f"{summary['censored']:.0%} censored, types {', '.join(summary['cancer_types'])}")


@app.command("tile")
def tile(
    slides: Annotated[list[Path], typer.Argument(help="Slide files or folders of slides.")],
    out: Annotated[Path, typer.Option("--out",
                                      help="Output folder (tiles/, thumbnails/ are created in it).")],
    target_mpp: Annotated[float, typer.Option("--target-mpp", help="Tile resolution in µm/px.")] = 0.5,
    tile_px: Annotated[int, typer.Option("--tile-px", help="Tile side in pixels at --target-mpp.")] = 256,
    overlap_px: Annotated[int, typer.Option("--overlap-px", help="Overlap between tiles, px at target.")] = 0,
    min_tissue: Annotated[float, typer.Option("--min-tissue", min=0.0, max=1.0,
                                              help="Keep tiles whose tissue fraction is at least "
                                                   "this.")] = 0.25,
    slide_mpp: Annotated[float | None, typer.Option("--slide-mpp",
                                                    help="Level-0 µm/px for slides whose metadata has none "
                                                         "(a slide's own wins).")] = None,
    force_slide_mpp: Annotated[bool, typer.Option("--force-slide-mpp",
                                                  help="--slide-mpp overrides every slide's metadata (for "
                                                       "wrong metadata).")] = False,
    mask_mpp: Annotated[float, typer.Option("--mask-mpp",
                                            help="Resolution of tissue segmentation, µm/px.")] = 8.0,
    min_tissue_area_um2: Annotated[float, typer.Option("--min-tissue-area-um2",
                                                       help="Drop tissue fragments smaller than this "
                                                            "(µm²).")] = 2.0e4,
    min_hole_area_um2: Annotated[float, typer.Option("--min-hole-area-um2",
                                                     help="Fill holes smaller than this (µm²).")] = 4.0e3,
    fill_holes: Annotated[bool, typer.Option("--fill-holes/--keep-holes",
                                             help="Fill every hole in the tissue, or keep large ones "
                                                  "out.")] = False,
    keep_pen: Annotated[bool, typer.Option("--keep-pen",
                                           help="Do not remove pen ink from the tissue mask.")] = False,
    thumbnail_px: Annotated[int, typer.Option("--thumbnail-px",
                                              help="Longer side of the overlay thumbnail.")] = 1024,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Slides tiled in parallel (processes).")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite",
                                            help="Redo slides that already have a tiles file.")] = False,
    skip_errors: Annotated[bool, typer.Option("--skip-errors",
                                              help="Keep going past unreadable slides.")] = False,
) -> None:
    """Segment tissue and write tile coordinates (tiles/<slide>.h5), overlays and tiles/summary.csv."""
    from mstar.cli.options import plural, rprint
    from mstar.slide.batch import tile_many
    from mstar.slide.tiling import TileParams
    from mstar.slide.tissue import TissueParams

    params = TileParams(target_mpp=target_mpp, tile_px=tile_px, overlap_px=overlap_px, min_tissue=min_tissue,
                        slide_mpp=slide_mpp, thumbnail_px=thumbnail_px, force_slide_mpp=force_slide_mpp,
                        tissue=TissueParams(mask_mpp=mask_mpp, min_tissue_area_um2=min_tissue_area_um2,
                                            min_hole_area_um2=min_hole_area_um2, fill_holes=fill_holes,
                                            remove_pen=not keep_pen))
    summary = tile_many(slides, out, params, workers=workers, overwrite=overwrite, skip_errors=skip_errors)
    counts = summary["status"].value_counts().to_dict()
    rprint(f"[bold]tiled[/bold] {plural(len(summary), 'slide')} into {out}/tiles: "
           f"{int(summary['n_tiles'].sum())} tiles; "
           + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; summary in {out}/tiles/summary.csv")
    report_failures(summary, "slide", f"{out}/tiles/summary.csv", name_column="path")
