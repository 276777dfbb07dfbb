"""Settings of the commands that use a stage-1 model with few or no labels: zero-shot, few-shot, retrieval.

Each is a :class:`~mstar.run.config.RunConfig`, so its run folder holds ``config.yaml`` (``--config`` on it
re-runs the command) and ``run.json`` (the fingerprint of the checkpoint, prompts, manifest and features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mstar.run.config import RunConfig

DEFAULT_JS = [1, 5, 10, 50, 100]
METHODS = ("text_prototypes", "simpleshot", "linear_probe")
RUNTIME = ("out", "name", "device", "text_encoder", "text_cache", "seen_cases")  # seen_cases: refuse or not


@dataclass
class Stage1Inputs(RunConfig):
    """What every stage-1 command reads: the checkpoint, the cohort, its features."""

    stage1: str = ""                   # stage-1 checkpoint (runs/pretrain/<name>/checkpoints/stage1.pt)
    manifest: str = ""                 # cohort CSV (case,slide,label,fold or another schema,
                                       # see docs/zeroshot.md)
    features: str = ""                 # patch features of the cohort (the encoder stage 1 was trained on)
    label_column: str = "auto"         # label column (auto: label, else study)
    seed: int = 0
    device: str = "auto"               # auto, cpu, cuda, cuda:1 ...
    text_encoder: str | None = None    # the text model's folder, if it moved since pretraining
    skip_missing: bool = False         # drop cases without (or with empty) features
    text_cache: str | None = None      # folder of a frozen text encoder's cached text states (see mstar
                                       # pretrain)
    seen_cases: str = "refuse"         # scored cases the stage-1 model was trained on: refuse | warn

    REQUIRED: ClassVar[tuple[str, ...]] = ("stage1", "manifest", "features")
    CHOICES: ClassVar[dict[str, tuple]] = {"seen_cases": ("refuse", "warn")}
    RUNTIME: ClassVar[tuple[str, ...]] = RUNTIME
    PATHS: ClassVar[tuple[str, ...]] = ("text_encoder", "text_cache")
    ALIASES: ClassVar[dict[str, str]] = {"checkpoint": "stage1"}

    def input_paths(self) -> dict[str, Any]:
        """The checkpoint, the manifest and the feature files of its slides (plus any ``INPUTS`` extras)."""
        from mstar.data.feature_dirs import feature_files_for
        from mstar.data.manifest import read_manifest

        slides = [s for ss in read_manifest(self.manifest, require_split=False,
                                            require_label=False).table["slides"]
                  for s in ss]
        extra = {k: getattr(self, k) or None for k in self.INPUTS
                 if k not in ("stage1", "manifest", "features")}
        features = feature_files_for(self.features, slides) if self.features else None
        return {"stage1": self.stage1, "manifest": self.manifest, "features": features, **extra}


@dataclass
class PromptInputs(Stage1Inputs):
    """What zero- and few-shot add: the prompts and the top-j pooling of patch-text similarities."""

    prompts: str = ""                  # prompt JSON or a packaged set (synthetic_cancer_type)
    js: list[int] = field(default_factory=lambda: list(DEFAULT_JS))  # top-j pooling sizes
    top_j: int | None = None           # fix j instead of choosing it on the val split
    temperature: float = 0.07          # softmax temperature of the probabilities

    REQUIRED: ClassVar[tuple[str, ...]] = ("stage1", "prompts", "manifest", "features")
    POSITIVE: ClassVar[tuple[str, ...]] = ("temperature",)
    INPUTS: ClassVar[tuple[str, ...]] = ("stage1", "manifest", "features", "prompts")

    def check(self) -> None:
        from mstar.errors import MstarError

        if not self.js or min(self.js) < 1:
            raise MstarError("config: 'js' (pooling sizes) must be positive integers, e.g. 1,5,10,50,100")

    def default_name(self) -> str:
        return f"{Path(self.manifest).stem}-{Path(str(self.prompts)).stem}"


@dataclass
class ZeroShotConfig(PromptInputs):
    """``mstar zero-shot``: text-prompt classification of the val and test cases.

    ``modality`` picks what is compared with the prompts: ``slide`` (the slide embedding and top-j pooled
    patches; needs ``features``), ``gene`` (RNA-seq embeddings; needs ``rna``) or ``report`` (report
    embeddings; needs ``reports``)."""

    modality: str = "slide"            # slide | gene | report
    reports: str | None = None         # reports (modality report)
    report_prep: str = "auto"          # auto (CSV tables: OCR clean-up, one per patient) | ocr | none
    rna: str | None = None             # RNA table (modality gene)
    rna_layout: str = "auto"
    batch_size: int = 32               # items per forward pass (gene, report)
    bootstrap: int = 1000
    heatmaps: int = 4                  # test slides with a similarity heatmap (0: none)
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "zeroshot"
    CHOICES: ClassVar[dict[str, tuple]] = {**Stage1Inputs.CHOICES, "modality": ("slide", "gene", "report"),
                                           "report_prep": ("auto", "ocr", "none")}
    AT_LEAST: ClassVar[dict[str, float]] = {"top_j": 1, "bootstrap": 0, "heatmaps": 0, "batch_size": 1}
    INPUTS: ClassVar[tuple[str, ...]] = ("stage1", "manifest", "features", "prompts", "reports", "rna")
    RUNTIME: ClassVar[tuple[str, ...]] = (*RUNTIME, "batch_size")

    def required(self) -> tuple[str, ...]:
        need = {"slide": "features", "gene": "rna", "report": "reports"}.get(self.modality, "features")
        return ("stage1", "prompts", "manifest", need)

    def default_name(self) -> str:
        base = super().default_name()
        return base if self.modality == "slide" else f"{base}-{self.modality}"

    def input_paths(self) -> dict[str, Any]:
        if self.modality == "slide":
            return super().input_paths()
        return {k: getattr(self, k) or None for k in ("stage1", "manifest", "prompts", "reports", "rna")}


@dataclass
class FewShotConfig(PromptInputs):
    """``mstar few-shot``: k labelled slides per class, seeded draws, the test split as queries."""

    shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # support slides per class
    runs: int = 10                     # seeded support draws per k
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    top_patches: int = 100             # support patches averaged per text prototype
    prototype_rule: str = "per_case"   # per_case (each support case weighs the same, unit prototypes)
                                       # | upstream (mSTAR's top-100 pooled patches; decays with k)
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "fewshot"
    AT_LEAST: ClassVar[dict[str, float]] = {"runs": 1, "top_j": 1, "top_patches": 1}
    CHOICES: ClassVar[dict[str, tuple]] = {**PromptInputs.CHOICES, "prototype_rule": ("per_case", "upstream")}

    def check(self) -> None:
        from mstar.errors import MstarError

        super().check()
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise MstarError(f"config: 'methods' has unknown {unknown}; choose from {', '.join(METHODS)}")
        if not self.shots or min(self.shots) < 1:
            raise MstarError("config: every 'shots' value must be at least 1")


@dataclass
class RetrievalConfig(Stage1Inputs):
    """``mstar retrieve``: slide↔report, slide↔gene and slide→slide retrieval on one split."""

    reports: str | None = None         # reports JSON or CSV keyed by slide or case id
    rna: str | None = None             # RNA table or folder of per-case CSVs
    rna_layout: str = "auto"           # auto, genes_x_cases, cases_x_genes, wide, per_case
    split: str = "test"                # test, val, train or all
    within_label: bool = False         # also retrieve within each label (cancer type)
    report_prep: str = "auto"          # auto (CSV tables: OCR clean-up, one per patient) | ocr | none
    bootstrap: int = 1000
    batch_size: int = 8                # slides per forward pass
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "retrieval"
    REQUIRED: ClassVar[tuple[str, ...]] = ("stage1", "manifest")
    CHOICES: ClassVar[dict[str, tuple]] = {**Stage1Inputs.CHOICES, "split": ("test", "val", "train", "all"),
                                           "report_prep": ("auto", "ocr", "none")}
    AT_LEAST: ClassVar[dict[str, float]] = {"bootstrap": 0, "batch_size": 1}
    INPUTS: ClassVar[tuple[str, ...]] = ("stage1", "manifest", "features", "reports", "rna")
    RUNTIME: ClassVar[tuple[str, ...]] = (*RUNTIME, "batch_size")

    def check(self) -> None:
        from mstar.errors import MstarError

        if not self.reports and not self.rna:
            raise MstarError("retrieval needs --reports and/or --rna (slide→slide alone is "
                             "`mstar few-shot`'s SimpleShot)")

    def default_name(self) -> str:
        return f"{Path(self.manifest).stem}-{self.split}"
