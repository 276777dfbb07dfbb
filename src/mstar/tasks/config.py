"""Settings of the supervised slide-level tasks (``mstar train classify|survival``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mstar.errors import MstarError
from mstar.run.config import RunConfig
from mstar.run.harness import LOGGERS

TASKS = ("classify", "survival")
PROTOCOLS = ("clean", "upstream")
AGGREGATOR_PROJ = ("checkpoint", "fresh", "none")


@dataclass
class TrainConfig(RunConfig):
    """Everything a supervised slide-level run depends on."""

    task: str = "classify"             # classify | survival
    manifest: str = ""                 # CSV in an upstream schema
    features: str = ""                 # folder of <slide>.h5/.pt (any layout)
    model: str = "abmil"               # aggregator name from `mstar models`
    model_args: dict = field(default_factory=dict)
    stage1: str | None = None          # stage-1 checkpoint initialising TransMIL ("mSTAR+")
    aggregator_lr: float = 2e-5        # learning rate of the pretrained aggregator's parameters
    aggregator_proj: str = "checkpoint"  # checkpoint: keep stage-1 `proj` | fresh: new MLP
                                         # (upstream TransMIL_Pre)
    epochs: int = 50
    lr: float = 2e-4
    weight_decay: float = 1e-5
    batch_size: int = 4                # bags per step (upstream: 1)
    max_patches: int | None = 4096     # random patch subset per bag per training step
    patience: int = 10                 # early stopping: epochs without validation improvement
    n_bins: int = 4                    # survival: discrete time bins
    protocol: str = "clean"            # clean: select on val, report test | upstream: select on val ∪ test
    runs: int = 1                      # repeats with seeds seed, seed+1, ...
    seed: int = 0
    bootstrap: int = 1000              # resamples for confidence intervals
    val_fraction: float = 0.15         # validation carved from train when CV folds have none
    train_fraction: float = 1.0        # share of each unit's training cases used (low-label; seeded)
    ordinal: bool | None = None        # quadratic kappa; None = auto (integer labels)
    skip_missing: bool = False         # drop cases without feature files
    context: bool = False              # multi-resolution features: [high-power | low-power context] per tile
    precision: str = "auto"            # auto | 32 | bf16-mixed | 16-mixed
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1
    num_workers: int = 0
    logger: str = "csv"                # csv (log.csv) | tensorboard (also <run>/tensorboard/)
    out: str = "runs"
    name: str | None = None

    CHOICES: ClassVar[dict[str, tuple]] = {"task": TASKS, "protocol": PROTOCOLS,
                                           "aggregator_proj": AGGREGATOR_PROJ, "logger": LOGGERS}
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifest", "features")
    AT_LEAST: ClassVar[dict[str, float]] = {"epochs": 1, "batch_size": 1, "runs": 1, "n_bins": 1,
                                            "patience": 1, "max_patches": 1, "bootstrap": 0, "num_workers": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("lr", "aggregator_lr")
    FRACTIONS: ClassVar[tuple[str, ...]] = ("val_fraction",)
    INPUTS: ClassVar[tuple[str, ...]] = ("manifest", "features", "stage1")
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "num_workers", "accelerator", "devices", "logger")
    ALIASES: ClassVar[dict[str, str]] = {"aggregator": "stage1"}

    def check(self) -> None:
        if not 0 < self.train_fraction <= 1:
            raise MstarError(f"config: 'train_fraction' must be in (0, 1], got {self.train_fraction!r}")

    def group(self) -> str:
        return self.task

    def default_name(self) -> str:
        return f"{Path(self.manifest).stem}-{self.model}"

    def input_paths(self) -> dict[str, Any]:
        """The manifest, the feature files of its slides, and the stage-1 checkpoint."""
        from mstar.data.feature_dirs import feature_files_for
        from mstar.data.manifest import read_manifest

        slides = [s for ss in read_manifest(self.manifest).table["slides"] for s in ss]
        return {"manifest": self.manifest, "features": feature_files_for(self.features, slides),
                "stage1": self.stage1}
