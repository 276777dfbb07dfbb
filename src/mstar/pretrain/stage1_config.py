"""Stage-1 pretraining configuration: defaults < YAML file < command-line overrides (like ``TrainConfig``).

The resolved config is written to ``runs/pretrain/<name>/config.yaml``; ``--config`` on that file
reproduces the run. Fields the method notes leave open (batch size, optimiser, schedule, epochs) are our
choices; they are listed in ``docs/pretraining.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mstar.errors import MstarError
from mstar.run.config import RunConfig
from mstar.run.harness import LOGGERS

GENE_ENCODERS = ("performer", "snn")
HELDOUT = ("val", "val+test")


@dataclass
class Stage1Config(RunConfig):
    """Everything a stage-1 pretraining run depends on."""

    manifest: str = ""                 # slides with case and cancer type (case,slide,label[,fold])
    features: str = ""                 # folder of <slide>.h5/.pt patch features; empty: reports + RNA only
    reports: str | None = None         # JSON {slide_or_case: text}, upstream's split JSON, or a CSV table
    report_prep: str = "auto"          # auto (CSV tables: OCR clean-up, one per patient, diagnosis first)
                                       # | ocr | none
    rna: str | None = None             # genes x cases table, cases x genes (rna_layout), or per-case folder
    rna_layout: str = "auto"           # see mstar.data.rna.read_rna_table
    label_column: str = "auto"         # cancer type column: auto = label, else study
    labels: list[str] | None = None    # train and hold out only these cancer types (None: all)
    continue_from: str | None = None   # stage-1 run folder (or stage1.pt) to continue training (accrual)
    replay_fraction: float = 0.0       # share of the earlier run's training cases mixed back in
    val_fraction: float = 0.15         # held-out cases when the manifest has no split column
    heldout: str = "val+test"          # splits scored for retrieval (never trained on): val | val+test
    text_encoder: str | None = None    # local Hugging Face folder (BioBERT); None = the MiniLM of the demo
    text_train_layers: int = 0         # top BERT layers trained (0: only proj_text; -1: all)
    text_lr: float = 1e-5              # learning rate of trained BERT layers
    max_tokens: int = 512
    text_pooling: str = "auto"         # auto (what the model was trained with: MiniLM mean, BioBERT [CLS])
                                       # | cls | mean
    report_negation: str = "drop"      # drop negated clauses before encoding ("no X" is not X) | keep
    text_cache: str | None = None      # folder keeping a frozen text encoder's text states across runs
    gene_encoder: str = "snn"          # snn (MCAT's self-normalising MLP on standardised genes)
                                       # | performer (scBERT-style, upstream's; loses what is in the RNA at
                                       # cohort sizes of hundreds, docs/pretraining.md)
    gene_args: dict = field(default_factory=dict)   # e.g. {dim: 200, depth: 1} or {hidden: [256, 256]}
    gene2vec: str | None = None        # Gene2Vec-format vectors (frozen gene identities, performer only)
    dim: int = 512                     # embedding width of every branch (and TransMIL)
    vision_args: dict = field(default_factory=dict)  # TransMIL extras: heads, dim_head, num_landmarks,
                                                     # attn_dropout
    epochs: int = 50                   # 0: the untrained model (random encoders), a baseline
    batch_size: int = 16               # slides per step per device (global batch = batch_size x devices)
    max_patches: int | None = 4096     # random patch subset per slide per step (all at inference)
    lr: float = 1e-4
    weight_decay: float = 0.01         # AdamW; not applied to biases, norms, tokens or the temperature
    warmup_fraction: float = 0.05      # linear warm-up over this fraction of steps, then cosine to 0
    grad_clip: float = 1.0             # 0 = off
    temperature: float = 0.07          # initial InfoNCE temperature (learned)
    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    preserve_weight: float = 1.0       # pooled-feature term: keeps within-type variation of slide embeddings
    val_every: int = 1                 # validation retrieval every N epochs (and always at the end)
    bootstrap: int = 1000              # resamples for retrieval confidence intervals
    cache_features: bool = True        # keep every bag in RAM (float16); False: read from disk per step
    skip_missing: bool = False         # drop slides without (or with empty) feature files
    seed: int = 0
    precision: str = "auto"            # auto (GPU: bf16-mixed; CPU: stage1_train.cpu_bf16_pays) | 32 | bf16
    accelerator: str = "auto"          # auto | cpu | gpu
    devices: Any = 1                   # >1: DDP, embeddings gathered across ranks
    strategy: str = "auto"             # Lightning strategy (auto: DDP when devices > 1; ddp: on 1 too)
    num_workers: int = 0
    logger: str = "csv"                # csv (log.csv) | tensorboard (also <run>/tensorboard/)
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "pretrain"
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifest",)
    CHOICES: ClassVar[dict[str, tuple]] = {"gene_encoder": GENE_ENCODERS, "heldout": HELDOUT,
                                           "logger": LOGGERS, "report_prep": ("auto", "ocr", "none"),
                                           "report_negation": ("drop", "keep"),
                                           "text_pooling": ("auto", "cls", "mean")}
    AT_LEAST: ClassVar[dict[str, float]] = {"epochs": 0, "batch_size": 1, "dim": 1, "val_every": 1,
                                            "max_patches": 1, "warmup_fraction": 0, "bootstrap": 0,
                                            "num_workers": 0, "replay_fraction": 0,
                                            "preserve_weight": 0, "triplet_weight": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("lr", "temperature")
    FRACTIONS: ClassVar[tuple[str, ...]] = ("val_fraction",)
    INPUTS: ClassVar[tuple[str, ...]] = ("manifest", "features", "reports", "rna", "text_encoder", "gene2vec",
                                         "continue_from")
    PATHS: ClassVar[tuple[str, ...]] = ("text_cache",)
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "num_workers", "accelerator", "devices", "strategy",
                                          "logger", "cache_features", "text_cache")

    def check(self) -> None:
        if not self.reports and not self.rna:
            raise MstarError("config: stage 1 needs --reports and/or --rna "
                             "(slides alone have nothing to align to)")
        if not self.features and not (self.reports and self.rna):
            raise MstarError("config: without --features stage 1 aligns reports with RNA; give both "
                             "--reports and --rna")
        if self.gene2vec and self.gene_encoder != "performer":
            raise MstarError("config: gene2vec needs gene_encoder 'performer'")
        self.check_component_args()
        if self.warmup_fraction >= 1:
            raise MstarError("config: 'warmup_fraction' must be in [0, 1)")
        if self.replay_fraction > 1 or (self.replay_fraction > 0 and not self.continue_from):
            raise MstarError("config: 'replay_fraction' is a share in [0, 1] of the cases of continue_from's "
                             "run; set continue_from")

    def check_component_args(self) -> None:
        """``gene_args`` and ``vision_args`` must be arguments of the chosen components (a one-line error
        naming the key, e.g. Performer keys left in ``gene_args`` after ``--set gene_encoder=snn``)."""
        from mstar.models.gene_encoder import GeneEncoder, SNNGeneEncoder
        from mstar.models.transmil import TransMIL
        from mstar.run.component_args import check_kwargs

        gene_cls = SNNGeneEncoder if self.gene_encoder == "snn" else GeneEncoder
        check_kwargs(gene_cls, self.gene_args, "gene_args", f"gene_encoder {self.gene_encoder!r}",
                     skip=("vocabulary", "proj_dim", "gene_embeddings"))
        check_kwargs(TransMIL, self.vision_args, "vision_args", "the TransMIL slide aggregator",
                     skip=("in_dim", "dim", "input_proj"))

    def default_name(self) -> str:
        return f"{Path(self.manifest).stem}-stage1"

    def input_paths(self) -> dict[str, Any]:
        """The manifest, the feature files of its slides, the reports and RNA tables, the encoders' files."""
        from mstar.data.feature_dirs import feature_files_for
        from mstar.pretrain.stage1_inputs import read_slide_table

        slides = read_slide_table(self.manifest, self.label_column, self.val_fraction,
                                  self.seed)["slide"].tolist()
        features = feature_files_for(self.features, slides) if self.features else None
        cont = None
        if self.continue_from:
            from mstar.pretrain.stage1_continue import resolve_continuation

            cont = str(resolve_continuation(self.continue_from).checkpoint)
        return {"manifest": self.manifest, "features": features, "continue_from": cont,
                **{k: getattr(self, k) or None for k in ("reports", "rna", "text_encoder", "gene2vec")}}

