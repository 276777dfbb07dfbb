"""Stage-2 self-training configuration: defaults < YAML file < command-line overrides.

The run folder is ``<out>/selftrain/<name>/`` (:mod:`mstar.run`); its ``config.yaml`` re-runs it with
``--config``.
What the method notes leave open (optimiser, schedule, batch, augmentation, similarity form) are our
choices, listed with their reasons in ``docs/selftrain.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mstar.errors import MstarError
from mstar.run.config import RunConfig
from mstar.run.harness import LOGGERS, PRECISIONS

TARGET_MODES = ("stored", "ema")
EXPORTS = ("student", "ema")


@dataclass
class SelfTrainConfig(RunConfig):
    """Everything a stage-2 run depends on."""

    tiles: str = ""                    # work folder holding tiles/<slide>.h5 (or that tiles folder)
    features: str = ""                 # stored patch features of the stage-1 encoder (any layout)
    stage1: str = ""                   # stage-1 checkpoint {'model_state_dict': {proj.*, vision_encoder.*}}
    aggregator_args: dict = field(default_factory=dict)  # TransMIL extras not in the weights (num_landmarks)
    encoder: str = ""                  # student architecture: registry name, timm:<model> or a sidecar name
    checkpoint: str | None = None      # student initial weights (default: the registry's random init)
    slides: str | None = None          # folder of slides when the tiles files' slide_path moved
    encoder_name: str | None = None    # output encoder name (default: the run name, else <encoder folder>-s2)
    targets: str = "stored"            # stored: teacher over stored features | ema: over EMA-student features
    target_refresh_epochs: int = 1     # targets=ema: recompute every N epochs
    max_context_patches: int = 4096    # patches per teacher pass (larger slides: random disjoint groups)
    epochs: int = 10
    steps_per_epoch: int = 100
    slides_per_step: int = 4           # slides sampled per step per device
    patches_per_slide: int = 16        # patches per sampled slide (batch = slides x patches per device)
    lr: float = 1e-5                   # backbone learning rate (AdamW)
    proj_lr: float | None = None       # student projection learning rate (default 10 x lr)
    min_lr_ratio: float = 0.1          # cosine decay ends at lr x this
    warmup_steps: int = 0              # linear warm-up steps
    weight_decay: float = 0.05         # not applied to biases, norms, tokens, LayerScale gammas
    grad_clip: float = 3.0             # 0 = off
    ema_weight: float = 0.6            # lambda of the student-EMA term
    momentum_start: float = 0.996      # EMA momentum, cosine schedule to momentum_end over training
    momentum_end: float = 1.0
    train_proj: bool = False           # train the student's copy of the stage-1 proj (default: frozen)
    export: str = "student"            # which weights become the output encoder: student | ema
    augment: bool = True               # flips, 90-degree rotations, light colour jitter
    jitter: float = 0.1                # brightness/contrast/saturation strength (hue: jitter / 5)
    grad_checkpointing: bool = False   # recompute transformer blocks in backward (less memory)
    precision: str = "auto"            # auto (bf16-mixed on GPU, 32 on CPU) | 32-true | bf16-mixed | 16-mixed
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1                   # >1 (or torchrun): DDP
    strategy: str = "auto"             # Lightning strategy (ddp under torchrun when devices > 1)
    workers: int = 0                   # DataLoader processes reading patches (each opens its own slides)
    val_fraction: float = 0.2          # held-out slides (when val_slides is empty)
    val_slides: list = field(default_factory=list)  # explicit held-out slide ids
    val_patches_per_slide: int = 64    # fixed patches per slide used by validation
    probe_slides: int = 32             # training slides whose patches fit the probes (at most)
    patch_labels: str | None = "auto"  # auto (synthetic masks beside the slides) | CSV slide,x,y,label | none
    knn_k: int = 10
    bootstrap: int = 1000              # resamples for the confidence intervals in metrics.json
    seed: int = 0
    extract_batch: int = 64            # batch of the validation / target-refresh forward passes
    logger: str = "csv"                # csv (log.csv) | tensorboard (also <run>/tensorboard/)
    out: str = "runs"                  # runs folder: the run is <out>/selftrain/<name>
    name: str | None = None            # run name (default: the output encoder's name)

    KIND: ClassVar[str] = "selftrain"
    REQUIRED: ClassVar[tuple[str, ...]] = ("tiles", "features", "stage1", "encoder")
    CHOICES: ClassVar[dict[str, tuple]] = {"targets": TARGET_MODES, "export": EXPORTS,
                                           "precision": PRECISIONS, "logger": LOGGERS}
    AT_LEAST: ClassVar[dict[str, float]] = {
        "epochs": 1, "steps_per_epoch": 1, "slides_per_step": 1, "patches_per_slide": 1,
        "max_context_patches": 1, "target_refresh_epochs": 1, "val_patches_per_slide": 1, "knn_k": 1,
        "extract_batch": 1, "ema_weight": 0, "warmup_steps": 0, "workers": 0, "bootstrap": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("lr",)
    FRACTIONS: ClassVar[tuple[str, ...]] = ("val_fraction",)
    INPUTS: ClassVar[tuple[str, ...]] = ("tiles", "features", "stage1", "checkpoint", "patch_labels")
    PATHS: ClassVar[tuple[str, ...]] = ("slides",)
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "slides", "accelerator", "devices", "strategy",
                                          "workers", "logger", "grad_checkpointing")
    ALIASES: ClassVar[dict[str, str]] = {"aggregator": "stage1"}

    def check(self) -> None:
        if not 0 <= self.momentum_start <= self.momentum_end <= 1:
            raise MstarError("config: need 0 <= momentum_start <= momentum_end <= 1")
        if not 0 < self.min_lr_ratio <= 1:
            raise MstarError("config: 'min_lr_ratio' must be in (0, 1]")

    def default_name(self) -> str:
        from mstar.features.encoders import folder_name

        return self.encoder_name or f"{folder_name(self.encoder)}-s2"

    def output_name(self) -> str:
        """The exported encoder's name: ``encoder_name``, else the run name, else ``<encoder folder>-s2``."""
        return self.encoder_name or self.name or self.default_name()

    def input_paths(self) -> dict[str, Any]:
        """The tiles and features folders as resolved, the checkpoints, and a patch-labels CSV."""
        from mstar.data.feature_dirs import resolve_feature_dir
        from mstar.selftrain.cohort import tiles_folder

        labels = self.patch_labels if self.patch_labels not in (None, "auto", "none") else None
        return {"tiles": tiles_folder(self.tiles), "features": resolve_feature_dir(self.features),
                "stage1": self.stage1, "checkpoint": self.checkpoint, "patch_labels": labels}
