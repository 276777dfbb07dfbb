"""Stage-1 pretraining configuration: defaults < YAML file < command-line overrides (like ``TrainConfig``).

The resolved config is written to ``runs/pretrain/<name>/config.yaml``; ``--config`` on that file
reproduces the run. Fields the method notes leave open (batch size, optimiser, schedule, epochs) are our
choices; they are listed in ``docs/pretraining.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mstar.errors import MstarError

GENE_ENCODERS = ("performer", "snn")
HELDOUT = ("val", "val+test")


@dataclass
class Stage1Config:
    """Everything a stage-1 pretraining run depends on."""

    manifest: str = ""                 # slides with case and cancer type (case,slide,label[,fold])
    features: str = ""                 # folder of <slide>.h5/.pt patch features (any layout)
    reports: str | None = None         # JSON {slide_or_case: text} (or upstream {"train": [{id, report}]})
    rna: str | None = None             # genes x cases table, cases x genes (rna_layout), or per-case folder
    rna_layout: str = "auto"           # see mstar.data.rna.read_rna_table
    label_column: str = "auto"         # cancer type column: auto = label, else study
    val_fraction: float = 0.15         # held-out cases when the manifest has no split column
    heldout: str = "val+test"          # splits scored for retrieval (never trained on): val | val+test
    text_encoder: str | None = None    # local Hugging Face folder (BioBERT); None = the MiniLM of the demo
    text_train_layers: int = 0         # top BERT layers trained (0: only proj_text; -1: all)
    text_lr: float = 1e-5              # learning rate of trained BERT layers
    max_tokens: int = 512
    gene_encoder: str = "performer"    # performer (scBERT-style) | snn
    gene_args: dict = field(default_factory=dict)   # e.g. {dim: 200, depth: 1} or {hidden: [256, 256]}
    gene2vec: str | None = None        # Gene2Vec-format vectors (frozen gene identities, performer only)
    dim: int = 512                     # embedding width of every branch (and TransMIL)
    vision_args: dict = field(default_factory=dict)  # TransMIL extras: heads, dim_head, num_landmarks, attn_dropout
    epochs: int = 50
    batch_size: int = 16               # slides per step per device (global batch = batch_size x devices)
    max_patches: int | None = 4096     # random patch subset per slide per step (all at inference)
    lr: float = 1e-4
    weight_decay: float = 0.01         # AdamW; not applied to biases, norms, tokens or the temperature
    warmup_fraction: float = 0.05      # linear warm-up over this fraction of steps, then cosine to 0
    grad_clip: float = 1.0             # 0 = off
    temperature: float = 0.07          # initial InfoNCE temperature (learned)
    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    val_every: int = 1                 # validation retrieval every N epochs (and always at the end)
    bootstrap: int = 1000              # resamples for retrieval confidence intervals
    cache_features: bool = True        # keep every bag in RAM (float16); False: read from disk per step
    skip_missing: bool = False         # drop slides without (or with empty) feature files
    seed: int = 0
    precision: str = "auto"            # auto (bf16-mixed on GPU, 32 on CPU) | 32 | bf16-mixed | 16-mixed
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1                   # >1: DDP, embeddings gathered across ranks
    num_workers: int = 0
    out: str = "runs"
    name: str | None = None

    def validate(self) -> Stage1Config:
        """Check required fields and ranges; raise :class:`MstarError` naming the field."""
        for key in ("manifest", "features"):
            if not getattr(self, key):
                raise MstarError(f"config: '{key}' is required (--{key})")
        if not self.reports and not self.rna:
            raise MstarError("config: stage 1 needs --reports and/or --rna (slides alone have nothing to align to)")
        for key in ("epochs", "batch_size", "dim", "val_every"):
            if int(getattr(self, key)) < 1:
                raise MstarError(f"config: '{key}' must be at least 1")
        for key in ("lr", "temperature"):
            if not float(getattr(self, key)) > 0:
                raise MstarError(f"config: '{key}' must be positive")
        if self.gene_encoder not in GENE_ENCODERS:
            raise MstarError(f"config: gene_encoder must be one of {GENE_ENCODERS}, got {self.gene_encoder!r}")
        if self.gene2vec and self.gene_encoder != "performer":
            raise MstarError("config: gene2vec needs gene_encoder 'performer'")
        if not 0 < self.val_fraction < 1:
            raise MstarError("config: 'val_fraction' must be between 0 and 1")
        if self.heldout not in HELDOUT:
            raise MstarError(f"config: heldout must be one of {HELDOUT}, got {self.heldout!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise MstarError("config: 'warmup_fraction' must be in [0, 1)")
        if self.max_patches is not None and int(self.max_patches) < 1:
            raise MstarError("config: 'max_patches' must be at least 1 (or null for all patches)")
        return self

    def run_dir(self) -> Path:
        """``<out>/pretrain/<name>``; the name defaults to the manifest's stem."""
        return Path(self.out) / "pretrain" / (self.name or f"{Path(self.manifest).stem}-stage1")

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def load_stage1_config(yaml_path: str | None = None, overrides: dict[str, Any] | None = None) -> Stage1Config:
    """Defaults, then the YAML file, then ``overrides`` (None values ignored); unknown keys are errors."""
    from mstar.tasks.config import load_config

    return load_config(yaml_path, overrides, base=Stage1Config)
