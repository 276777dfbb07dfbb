"""`mstar train multimodal-survival`: slide features + omics -> survival (MCAT, Porpoise, MOTCat, CMTA)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli.options import (
    BatchSize,
    Config,
    Epochs,
    Lr,
    Manifest,
    Name,
    Out,
    Overwrite,
    Seed,
    Set,
    SkipMissing,
    build_config,
)
from mstar.cli.train import MaxPatches, Protocol, Runs, TrainFraction, print_selection, train_app

MMModel = Annotated[Optional[str], typer.Option(
    "--model", help="mcat | motcat | cmta | porpoise | snn (genomics only) | abmil (WSI only) | late "
                    "(late fusion).")]
MMFeatures = Annotated[Optional[Path], typer.Option(
    "--features", help="Folder of <slide>.h5/.pt features (not needed for snn).")]
Rna = Annotated[Optional[Path], typer.Option(
    "--rna", help="Omics: a wide TCGA table (*_rnaseq/_cnv/_mut columns), an expression table, or a folder "
                  "of per-case Gene,Value CSVs (upstream multimodal CSV).")]
Folds = Annotated[Optional[Path], typer.Option(
    "--folds", help="Folder of splits_{k}.csv (columns train,val of case ids): k-fold CV as MCAT.")]
Signatures = Annotated[Optional[Path], typer.Option(
    "--signatures", help="MCAT signatures.csv (6 gene groups; default: found beside --rna or the manifest).")]
Modalities = Annotated[Optional[str], typer.Option(
    "--modalities", help="Wide tables: comma-separated suffixes to use, e.g. rnaseq,cnv (default: all).")]
Omics = Annotated[Optional[str], typer.Option(
    "--omics", help="auto (groups for mcat/motcat/cmta, else the full vector) | groups | full.")]


@train_app.command("multimodal-survival")
def multimodal_survival(
    manifest: Manifest = None, features: MMFeatures = None, rna: Rna = None, model: MMModel = None,
    folds: Folds = None, signatures: Signatures = None, modalities: Modalities = None, omics: Omics = None,
    config: Config = None, epochs: Epochs = None, lr: Lr = None, batch_size: BatchSize = None,
    max_patches: MaxPatches = None, runs: Runs = None, seed: Seed = None, protocol: Protocol = None,
    train_fraction: TrainFraction = None, out: Out = None, name: Name = None,
    skip_missing: SkipMissing = False, overwrite: Overwrite = False, set_: Set = None,
) -> None:
    """Survival from slides + genomics: NLLSurv (4 bins), C-index with CIs, per-fold mean ± sd, KM curves."""
    opts = {k: v for k, v in locals().items() if k not in ("config", "set_", "overwrite")}
    from mstar.cli.options import make_console
    from mstar.tasks.multimodal import train_multimodal
    from mstar.tasks.multimodal_config import MultimodalConfig

    result = train_multimodal(build_config(MultimodalConfig, config, set_, **opts), overwrite=overwrite)
    console = make_console()
    info = result["omics"]
    if info:
        console.print(f"omics: {info['input_width']} inputs ({info['mode']}) from {info['source']}"
                      + (f" [{', '.join(info['modalities'])}]" if info["modalities"] else ""))
        for g in info.get("groups", []):
            console.print(f"  {g['group']}: {g['genes_matched']} of {g['genes_listed']} genes matched "
                          f"({g['columns']} columns)")
    print_selection(result, "c_index")
