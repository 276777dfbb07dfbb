"""Stage-2 self-training configuration: defaults < YAML file < command-line overrides.

The resolved config is written to ``<out>/config.yaml``; ``--config`` on that file reproduces the run.
What the method notes leave open (optimiser, schedule, batch, augmentation, similarity form) are our
choices, listed with their reasons in ``docs/selftrain.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mstar.errors import MstarError

TARGET_MODES = ("stored", "ema")
EXPORTS = ("student", "ema")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed")


@dataclass
class SelfTrainConfig:
    """Everything a stage-2 run depends on."""

    tiles: str = ""                    # work folder holding tiles/<slide>.h5 (or that tiles folder)
    features: str = ""                 # stored patch features of the stage-1 encoder (any layout)
    aggregator: str = ""               # stage-1 checkpoint {'model_state_dict': {proj.*, vision_encoder.*}}
    aggregator_args: dict = field(default_factory=dict)  # TransMIL extras not in the weights (num_landmarks)
    encoder: str = ""                  # student architecture: registry name, timm:<model> or a sidecar name
    checkpoint: str | None = None      # student initial weights (default: the registry's random init)
    out: str = ""                      # run directory
    slides: str | None = None          # folder of slides when the tiles files' slide_path moved
    name: str | None = None            # output encoder name (default <encoder folder>-s2)
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

    def validate(self) -> SelfTrainConfig:
        """Check required fields and ranges; raise :class:`MstarError` naming the field."""
        for key in ("tiles", "features", "aggregator", "encoder", "out"):
            if not getattr(self, key):
                raise MstarError(f"config: '{key}' is required (--{key})")
        for key in ("epochs", "steps_per_epoch", "slides_per_step", "patches_per_slide", "max_context_patches",
                    "target_refresh_epochs", "val_patches_per_slide", "knn_k", "extract_batch"):
            if int(getattr(self, key)) < 1:
                raise MstarError(f"config: '{key}' must be at least 1, got {getattr(self, key)!r}")
        if self.targets not in TARGET_MODES:
            raise MstarError(f"config: targets must be one of {TARGET_MODES}, got {self.targets!r}")
        if self.export not in EXPORTS:
            raise MstarError(f"config: export must be one of {EXPORTS}, got {self.export!r}")
        if str(self.precision) not in PRECISIONS:
            raise MstarError(f"config: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.momentum_start <= self.momentum_end <= 1:
            raise MstarError("config: need 0 <= momentum_start <= momentum_end <= 1")
        if self.ema_weight < 0 or self.lr <= 0 or self.workers < 0 or self.warmup_steps < 0:
            raise MstarError("config: ema_weight and warmup_steps must be >= 0, lr > 0, workers >= 0")
        if not 0 < self.val_fraction < 1:
            raise MstarError("config: 'val_fraction' must be between 0 and 1")
        if not 0 < self.min_lr_ratio <= 1:
            raise MstarError("config: 'min_lr_ratio' must be in (0, 1]")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)
