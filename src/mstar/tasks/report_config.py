"""Configuration of report generation (`mstar train report`), resolved like the other tasks' configs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mstar.errors import MstarError


@dataclass
class ReportConfig:
    """Everything a report-generation run depends on (HistGen's recipe by default)."""

    manifest: str = ""                 # case,slide,label,fold (one report per slide)
    features: str = ""
    reports: str = ""                  # JSON {slide_id: text} or HistGen's {"train": [{"id", "report"}], ...}
    model_args: dict = field(default_factory=dict)   # ReportGenerator options (d_model, region_size, ...)
    aggregator: str | None = None      # stage-1 checkpoint: its `proj` becomes the WSI mapping (needs d_vf=512)
    epochs: int = 40
    lr: float = 1e-4
    weight_decay: float = 5e-5
    gamma: float = 0.8                 # StepLR decay per epoch
    grad_clip_value: float | None = 0.1  # clip gradients by value (HistGen); None: off
    batch_size: int = 1
    min_freq: int = 10                 # vocabulary: tokens seen at least this often in training reports
    beam_size: int = 3
    val_beam_size: int | None = None   # beam width while selecting the epoch (default: beam_size)
    length_penalty: float = 0.0        # 0 = HistGen; 1 = Wu et al. normalisation (see docs/report_generation.md)
    val_every: int = 1
    meteor: bool = True                # METEOR 1.5 via pycocoevalcap (needs Java; omitted with a note otherwise)
    bootstrap: int = 1000
    seed: int = 0
    skip_missing: bool = False
    out: str = "runs"
    name: str | None = None

    def validate(self) -> ReportConfig:
        for key in ("manifest", "features", "reports"):
            if not getattr(self, key):
                raise MstarError(f"config: '{key}' is required (--{key})")
        if self.epochs < 1 or self.batch_size < 1 or self.beam_size < 1:
            raise MstarError("config: epochs, batch_size and beam_size must be at least 1")
        return self

    def run_dir(self) -> Path:
        return Path(self.out) / "report" / (self.name or f"{Path(self.manifest).stem}-histgen")

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)
