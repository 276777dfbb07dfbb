"""Settings of ``mstar train multimodal-survival``: the survival settings plus the genomic inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mstar.data.omics import MODALITIES
from mstar.errors import MstarError
from mstar.tasks.config import TrainConfig

log = logging.getLogger(__name__)

TASK = "multimodal-survival"
# command-line name -> registry name (registry names are accepted as well)
MODELS = {"mcat": "mcat", "motcat": "motcat", "cmta": "cmta", "porpoise": "porpoise", "snn": "snn",
          "abmil": "abmil_surv", "late": "late_fusion"}
GROUP_MODELS = ("mcat", "motcat", "cmta")  # one SNN per signature group
OMICS_MODES = ("auto", "groups", "full")


@dataclass
class MultimodalConfig(TrainConfig):
    """Multimodal survival: slide bags + omics -> discrete-time survival (same protocol as ``survival``)."""

    task: str = TASK
    model: str = "mcat"                # mcat | motcat | cmta | porpoise | snn | abmil | late
    rna: str = ""                      # omics: wide TCGA table, expression table, or folder of per-case files
    signatures: str | None = None      # MCAT signatures.csv (default: found beside --rna or the manifest)
    modalities: list | None = None     # wide tables: suffixes to use (rnaseq, cnv, mut); default all present
    omics: str = "auto"                # auto: signature groups for mcat/motcat/cmta, full vector otherwise
    folds: str | None = None           # folder of splits_{k}.csv (MCAT 5-fold CV)
    epochs: int = 20                   # MCAT/MOTCat/CMTA train 20 epochs
    batch_size: int = 8

    tasks: ClassVar[tuple[str, ...]] = (TASK,)

    @property
    def registry_name(self) -> str:
        return MODELS.get(self.model, self.model)

    @property
    def omics_mode(self) -> str:
        """``groups`` or ``full`` (``auto`` resolved from the model)."""
        if self.omics != "auto":
            return self.omics
        return "groups" if self.registry_name in GROUP_MODELS else "full"

    def required(self) -> tuple[str, ...]:
        need = ["manifest"]
        if self.registry_name != "snn":
            need.append("features")  # genomic-only SNN needs no slides
        if self.registry_name != "abmil_surv":
            need.append("rna")  # WSI-only ABMIL needs no omics (with --rna it keeps the cases that have them)
        return tuple(need)

    def validate(self) -> MultimodalConfig:
        if self.registry_name not in MODELS.values():
            raise MstarError(f"config: model {self.model!r} is not a multimodal survival model; use one of "
                             f"{', '.join(MODELS)}")
        if self.omics not in OMICS_MODES:
            raise MstarError(f"config: omics must be one of {OMICS_MODES}, got {self.omics!r}")
        if self.registry_name in GROUP_MODELS and self.omics == "full":
            raise MstarError(f"config: {self.model} takes one input per signature group; drop omics=full")
        if isinstance(self.modalities, str):
            self.modalities = [m.strip() for m in self.modalities.split(",") if m.strip()]
        unknown = [m for m in self.modalities or [] if m not in MODALITIES]
        if unknown:
            raise MstarError(f"config: unknown modalities {unknown}; use some of {', '.join(MODALITIES)}")
        if self.aggregator:
            raise MstarError("config: --aggregator (stage-1 TransMIL) does not apply to multimodal survival")
        super().validate()
        return self

    def run_dir(self) -> Path:
        stem = Path(self.manifest).name
        for suffix in (".gz", ".csv", ".tsv", ".txt"):
            stem = stem.removesuffix(suffix)
        return Path(self.out) / self.task / (self.name or f"{stem}-{self.model}")

    def signatures_path(self) -> Path | None:
        """``signatures`` if given, else a ``signatures.csv`` beside (or one folder above) the omics table or
        the manifest; ``None`` when there is none."""
        if self.signatures:
            return Path(self.signatures)
        places = [Path(self.rna).parent, Path(self.rna).parent.parent, Path(self.manifest).parent,
                  Path(self.manifest).parent.parent] if self.rna else [Path(self.manifest).parent]
        for folder in places:
            candidate = folder / "signatures.csv"
            if candidate.is_file():
                log.info("signature groups from %s", candidate)
                return candidate
        return None
