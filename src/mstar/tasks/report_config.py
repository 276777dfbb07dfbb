"""Settings of report generation (`mstar train report`), resolved like every command's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from mstar.run.config import RunConfig
from mstar.run.harness import LOGGERS


@dataclass
class ReportConfig(RunConfig):
    """Everything a report-generation run depends on (HistGen's recipe by default)."""

    manifest: str = ""                 # case,slide,label,fold (one report per slide)
    features: str = ""
    reports: str = ""                  # JSON {slide_id: text} or HistGen's {"train": [{"id", "report"}], ...}
    model_args: dict = field(default_factory=dict)   # ReportGenerator options (d_model, region_size, ...)
    stage1: str | None = None          # stage-1 checkpoint: its `proj` becomes the WSI mapping
                                       # (needs d_vf=512)
    epochs: int = 40
    lr: float = 1e-4
    weight_decay: float = 5e-5
    gamma: float = 0.8                 # StepLR decay per epoch
    grad_clip_value: float | None = 0.1  # clip gradients by value (HistGen); None: off
    batch_size: int = 1
    min_freq: int = 10                 # vocabulary: tokens seen at least this often in training reports
    number_tokens: bool = True         # spell numbers by digits (never <unk>); False: whole words (HistGen)
    beam_size: int = 3
    consensus_k: int = 5               # re-rank by the consensus of the k nearest training reports
                                       # (docs/report_generation.md); 0 = the generator's report as is
    neighbour_embeddings: str | None = None  # `mstar embed` file of a stage-1 model pretrained on this
                                       # training split: neighbours = training reports nearest the slide's
                                       # embedding (cross-modal); None = nearest by pooled patch features
    val_beam_size: int | None = None   # beam width while selecting the epoch (default: beam_size)
    length_penalty: float = 0.0        # 0 = HistGen; 1 = Wu et al. normalisation
                                       # (see docs/report_generation.md)
    val_every: int = 1
    meteor: bool = True                # METEOR 1.5 via pycocoevalcap (needs Java; omitted with a note
                                       # otherwise)
    classes: str | None = None         # clinical check: prompts/knowledge JSON {"0": {"classnames":
                                       # {CODE: [names]}}} or a packaged set (default synthetic_cancer_type)
    bootstrap: int = 1000
    seed: int = 0
    skip_missing: bool = False
    precision: str = "auto"            # auto (bf16-mixed on GPU, 32 on CPU) | 32 | bf16-mixed
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1                   # >1: DDP, each rank a share of every epoch's slides (batch W·b)
    strategy: str = "auto"             # Lightning strategy (auto: DDP when devices > 1; torchrun works)
    logger: str = "csv"                # csv (log.csv) | tensorboard (also <run>/tensorboard/)
    checkpoint_every_s: float = 30.0   # write the resume point at most this often (0: every epoch)
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "report"
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifest", "features", "reports")
    CHOICES: ClassVar[dict[str, tuple]] = {"logger": LOGGERS}
    AT_LEAST: ClassVar[dict[str, float]] = {"epochs": 1, "batch_size": 1, "beam_size": 1, "val_beam_size": 1,
                                            "consensus_k": 0, "val_every": 1, "min_freq": 1, "bootstrap": 0,
                                            "checkpoint_every_s": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("lr",)
    INPUTS: ClassVar[tuple[str, ...]] = ("manifest", "features", "reports", "stage1", "classes",
                                         "neighbour_embeddings")
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "accelerator", "devices", "strategy", "logger",
                                          "checkpoint_every_s")
    ALIASES: ClassVar[dict[str, str]] = {"aggregator": "stage1"}

    def device_count(self) -> int | None:
        """How many devices ``devices`` names (None for ``auto``)."""
        if isinstance(self.devices, list):
            return len(self.devices)
        return int(self.devices) if str(self.devices).isdigit() else None

    def training_settings(self) -> ReportConfig:
        """The settings the harness trains with: on several devices DDP itself, never the notebook default
        of forked ranks (each would keep its chosen epoch to itself)."""
        import torch

        n = self.device_count()
        several = n > 1 if n is not None else torch.cuda.device_count() > 1  # auto: every visible GPU
        return replace(self, strategy="ddp") if self.strategy == "auto" and several else self

    def check(self) -> None:
        from mstar.errors import MstarError

        if self.strategy not in ("auto", "ddp"):  # spawned/forked ranks keep the chosen epoch to themselves
            raise MstarError(f"config 'strategy': report training runs with auto or ddp, got "
                             f"{self.strategy!r}")
        world = int(os.environ.get("WORLD_SIZE", "1"))  # a launcher's (torchrun) processes
        n = self.device_count()
        if world > 1 and n is not None and n != world:
            raise MstarError(f"config 'devices': {self.devices!r}, but the launcher started {world} "
                             f"processes (WORLD_SIZE); set devices={world}")
        if self.neighbour_embeddings and not self.consensus_k:
            raise MstarError("config 'neighbour_embeddings' is set but consensus_k is 0 (no neighbours are "
                             "consulted): drop one of them")
        if self.classes:  # a missing file is one error line before any training
            from mstar.data.prompts import resolve_prompts

            try:
                resolve_prompts(self.classes)
            except MstarError as err:
                raise MstarError(f"config 'classes' (the clinical check's classes): {err}") from None

    def default_name(self) -> str:
        return f"{Path(self.manifest).stem}-histgen"

    def input_paths(self) -> dict[str, Any]:
        """The manifest, the feature files of its slides, the reports, the stage-1 checkpoint, the
        clinical check's classes file and the neighbours' embeddings file."""
        from mstar.data.feature_dirs import feature_files_for
        from mstar.data.manifest import read_manifest
        from mstar.data.prompts import resolve_prompts

        slides = [s for ss in read_manifest(self.manifest).table["slides"] for s in ss]
        return {"manifest": self.manifest, "features": feature_files_for(self.features, slides),
                "reports": self.reports, "stage1": self.stage1,
                "classes": resolve_prompts(self.classes or "synthetic_cancer_type"),
                "neighbour_embeddings": self.neighbour_embeddings}


@dataclass
class GenerateConfig(RunConfig):
    """Settings of ``mstar generate``: reports of slides from a trained report run."""

    run: str = ""                      # the report run folder (runs/report/<name>)
    slides: list[str] = field(default_factory=list)  # slide ids (default: every slide of the features folder)
    features: str | None = None        # features folder (default: the run's)
    beam_size: int | None = None       # beam width (default: the run's)
    embeddings: str | None = None      # `mstar embed` file holding these slides (runs whose neighbours are
                                       # found by stage-1 embeddings; default: the run's neighbour_embeddings)
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "generate"
    REQUIRED: ClassVar[tuple[str, ...]] = ("run",)
    AT_LEAST: ClassVar[dict[str, float]] = {"beam_size": 1}
    INPUTS: ClassVar[tuple[str, ...]] = ("run", "features", "embeddings")

    def default_name(self) -> str:
        return Path(self.run).name

    def check(self) -> None:
        from mstar.errors import MstarError

        if self.embeddings and not Path(self.embeddings).is_file():
            raise MstarError(f"config 'embeddings': {self.embeddings}: no such file (write it with "
                             "`mstar embed --stage1 ... --features ...`)")

    def input_paths(self) -> dict[str, Any]:
        """The trained model, vocabulary, settings and neighbour bank, the feature files read and the
        embeddings file the neighbours are found with (``embeddings`` or the run's own)."""
        from mstar.data.feature_dirs import feature_files_for, resolve_feature_dir
        from mstar.run.checkpoint import load_checkpoint

        run = Path(self.run)
        bank = run / "neighbours.pt"
        source = (load_checkpoint(bank, what="neighbour bank", hint="; train the report run again "
                                  "(--overwrite)").get("source") if bank.is_file() else None)
        embeddings = self.embeddings or source
        features = None
        if self.features and self.slides:
            features = feature_files_for(self.features, list(self.slides))
        elif self.features:
            features = resolve_feature_dir(self.features)
        return {"model": run / "model.pt", "vocabulary": run / "vocab.json", "settings": run / "config.yaml",
                "neighbours": bank if bank.is_file() else None,
                "features": features,
                "embeddings": embeddings if embeddings and Path(embeddings).is_file() else None}
