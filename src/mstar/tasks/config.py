"""Training configuration: defaults < YAML file < command-line overrides, resolved into one object.

The resolved config is written to ``config.yaml`` in the run directory, so a run can be reproduced
with ``--config runs/<task>/<name>/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mstar.errors import MstarError

TASKS = ("classify", "survival")
PROTOCOLS = ("clean", "upstream")


@dataclass
class TrainConfig:
    """Everything a supervised slide-level run depends on."""

    task: str = "classify"             # classify | survival
    manifest: str = ""                 # CSV in an upstream schema
    features: str = ""                 # folder of <slide>.h5/.pt (any layout)
    model: str = "abmil"               # aggregator name from `mstar models`
    model_args: dict = field(default_factory=dict)
    aggregator: str | None = None      # stage-1 checkpoint initialising TransMIL ("mSTAR+")
    aggregator_lr: float = 2e-5        # learning rate of the pretrained aggregator's parameters
    aggregator_proj: str = "checkpoint"  # checkpoint: keep stage-1 `proj` | fresh: new MLP (upstream TransMIL_Pre)
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
    ordinal: bool | None = None        # quadratic kappa; None = auto (integer labels)
    skip_missing: bool = False         # drop cases without feature files
    precision: str = "auto"            # auto | 32 | bf16-mixed | 16-mixed
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1
    num_workers: int = 0
    out: str = "runs"
    name: str | None = None

    tasks: ClassVar[tuple[str, ...]] = TASKS

    def required(self) -> tuple[str, ...]:
        """Settings that must be given (a subclass may relax or extend them)."""
        return ("manifest", "features")

    def validate(self) -> TrainConfig:
        if self.task not in self.tasks:
            raise MstarError(f"config: task must be one of {self.tasks}, got {self.task!r}")
        if self.protocol not in PROTOCOLS:
            raise MstarError(f"config: protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        for key in self.required():
            if not getattr(self, key):
                raise MstarError(f"config: '{key}' is required (--{key})")
        for key in ("epochs", "batch_size", "runs", "n_bins"):
            if int(getattr(self, key)) < 1:
                raise MstarError(f"config: '{key}' must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise MstarError("config: 'val_fraction' must be between 0 and 1")
        return self

    def run_dir(self) -> Path:
        name = self.name or f"{Path(self.manifest).stem}-{self.model}"
        return Path(self.out) / self.task / name

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (numbers, booleans, lists, dicts)."""
    if "=" not in text:
        raise MstarError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def load_config(yaml_path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                base: type = TrainConfig):
    """Resolve defaults, then the YAML file, then ``overrides`` (``None`` values are ignored)."""
    valid = {f.name for f in dataclasses.fields(base)}
    values: dict[str, Any] = {}
    if yaml_path:
        path = Path(yaml_path)
        if not path.exists():
            raise MstarError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise MstarError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        if not isinstance(loaded, dict):
            raise MstarError(f"{path}: expected a mapping of settings at the top level")
        unknown = sorted(set(loaded) - valid)
        if unknown:
            raise MstarError(f"{path}: unknown settings {unknown}; valid: {sorted(valid)}")
        values.update(loaded)
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise MstarError(f"unknown setting {key!r}; valid: {sorted(valid)}")
        if value is not None:
            values[key] = value
    return base(**values)
