"""Settings of ``mstar train multimodal-survival``: the survival settings plus the genomic inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mstar.data.omics import MODALITIES
from mstar.errors import MstarError
from mstar.run.config import stem_of
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

    CHOICES: ClassVar[dict[str, tuple]] = {**TrainConfig.CHOICES, "task": (TASK,), "omics": OMICS_MODES}
    INPUTS: ClassVar[tuple[str, ...]] = ("manifest", "features", "rna", "signatures", "folds")

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
        if self.registry_name not in MODELS.values():  # a misspelt model first: what it needs is unknown
            raise MstarError(f"config: model {self.model!r} is not a multimodal survival model; use one of "
                             f"{', '.join(MODELS)}")
        need = ["manifest"]
        if self.registry_name != "snn":
            need.append("features")  # genomic-only SNN needs no slides
        if self.registry_name != "abmil_surv":
            need.append("rna")  # WSI-only ABMIL needs no omics (with --rna it keeps the cases that have them)
        return tuple(need)

    def check(self) -> None:
        super().check()
        if self.registry_name not in MODELS.values():
            raise MstarError(f"config: model {self.model!r} is not a multimodal survival model; use one of "
                             f"{', '.join(MODELS)}")
        if self.registry_name in GROUP_MODELS and self.omics == "full":
            raise MstarError(f"config: {self.model} takes one input per signature group; drop omics=full")
        unknown = [m for m in self.modalities or [] if m not in MODALITIES]
        if unknown:
            raise MstarError(f"config: unknown modalities {unknown}; use some of {', '.join(MODALITIES)}")
        if self.stage1:
            raise MstarError("config: --stage1 (a stage-1 TransMIL) does not apply to multimodal survival")

    def default_name(self) -> str:
        return f"{stem_of(self.manifest)}-{self.model}"

    def input_paths(self) -> dict[str, Any]:
        """The manifest, the feature files of its cases, the omics table, signatures and folds."""
        from mstar.data.cohort_tables import read_survival_cohort
        from mstar.data.feature_dirs import feature_files_for

        features = None
        if self.features:
            slides = [s for ss in read_survival_cohort(self.manifest, self.folds).table["slides"] for s in ss]
            features = feature_files_for(self.features, slides)
        return {"manifest": self.manifest, "features": features, "rna": self.rna or None,
                "signatures": self.signatures_path() if self.omics_mode == "groups" else None,
                "folds": self.folds}

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
