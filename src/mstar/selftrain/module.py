"""The Lightning module of stage 2: student + EMA anchor, teacher targets, per-epoch validation, checkpoints.

Per step (every rank): read a batch of augmented patches (:mod:`~mstar.selftrain.data`), look up their
teacher targets, ``loss = target term + lambda * EMA term`` (:mod:`~mstar.selftrain.loss`), AdamW step,
then the EMA update with the cosine momentum. Per epoch: validation on rank 0 (every rank waits); the
harness then writes ``checkpoints/last.ckpt`` (the resume point). Epoch 0 (before any step) is validated
too, so ``log.csv`` starts with the initial encoder.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mstar.run.module import RunModule
from mstar.run.schedules import warmup_cosine
from mstar.selftrain.augment import Augment
from mstar.selftrain.config import SelfTrainConfig
from mstar.selftrain.data import PatchSteps, make_loader
from mstar.selftrain.ema import EMA, cosine_momentum
from mstar.selftrain.loss import self_train_loss
from mstar.selftrain.student import Student
from mstar.selftrain.targets import TargetStore, refresh_from_encoder

NO_DECAY_SUFFIXES = ("cls_token", "pos_embed", "reg_token", "gamma", "dist_token")


@dataclass
class RunPlan:
    """What the module needs besides the models (built once by :func:`mstar.selftrain.train.self_train`).

    Attributes:
        slides: every slide, training first (``train`` = ``range(n_train)``), then held-out.
        n_train: number of training slides.
        teacher: the frozen stage-1 aggregator.
        aggregator_sha: sha256 of the aggregator file (cache provenance).
        labels: patch labels per slide id (may be empty).
        preprocess: the encoder's input contract.
        run: the run directory.
    """

    slides: list
    n_train: int
    teacher: object
    aggregator_sha: str
    labels: dict
    preprocess: object
    run: Path


class SelfTrainModule(RunModule):
    """Stage-2 training. ``history`` holds one dict per validated epoch (0 = before training).

    Args:
        cfg: The run's settings.
        student: The student (backbone + projection).
        plan: Slides, teacher, labels, preprocessing and the run folder.
        progress: Print one line per validated epoch.
    """

    PROGRESS = {"loss": "train_loss", "target": "train_target", "ema": "train_ema"}
    TERMS = ("loss", "target", "ema")

    def __init__(self, cfg: SelfTrainConfig, student: Student, plan: RunPlan, progress: bool = True) -> None:
        super().__init__()
        self.cfg, self.student, self.plan, self.progress = cfg, student, plan, progress
        self.ema = EMA(student.backbone)
        self.initial_entries: dict = {}
        self.initial_arrays: dict = {}
        self.store = TargetStore(plan.slides)
        self.evaluator = None
        self._refreshed = False  # targets=ema: refreshed at least once in this process

    @property
    def bf16(self) -> bool:
        return "bf16" in str(self.trainer.precision)

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.cfg.steps_per_epoch

    # ---- setup: targets cache (sharded over ranks), evaluator (rank 0) ----
    def setup(self, stage: str) -> None:
        cfg, plan = self.cfg, self.plan
        folder = plan.run / "targets"
        teacher = plan.teacher
        teacher.model.to(self.trainer.strategy.root_device)
        teacher.device = self.trainer.strategy.root_device
        self.store.build(folder, teacher, plan.aggregator_sha, cfg.max_context_patches, cfg.seed,
                         self.global_rank, self.trainer.world_size)
        self.trainer.strategy.barrier("selftrain-targets")
        self.store.open(folder)
        if self.global_rank == 0:
            from mstar.selftrain.evaluate import Evaluator

            n = len(plan.slides)
            self.evaluator = Evaluator(plan.slides, list(range(plan.n_train, n)), list(range(plan.n_train)),
                                       self.store, plan.labels, plan.preprocess, cfg.val_patches_per_slide,
                                       cfg.probe_slides, cfg.knn_k, cfg.seed, cfg.extract_batch)

    def train_dataloader(self):
        cfg = self.cfg
        augment = Augment(True, cfg.jitter) if cfg.augment else None
        data = PatchSteps(self.plan.slides[: self.plan.n_train], cfg.slides_per_step, cfg.patches_per_slide,
                          self.plan.preprocess, augment, cfg.seed, self.global_rank)
        return make_loader(data, cfg.steps_per_epoch, cfg.workers, pin_memory=self.device.type == "cuda",
                           epoch_fn=lambda: self.trainer.fit_loop.epoch_progress.current.processed)

    # ---- training ----
    def on_train_start(self) -> None:
        if not self.history:
            self._validate(0, n_boot=self.cfg.bootstrap)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        cfg = self.cfg
        due = (self.current_epoch % cfg.target_refresh_epochs == 0
               or not self._refreshed)  # (also after a resume)
        if cfg.targets == "ema" and due:
            self._refreshed = True
            refresh_from_encoder(self.store, range(self.plan.n_train), self.ema.model, self.plan.teacher,
                                 self.plan.preprocess, self.device, cfg.extract_batch,
                                 cfg.max_context_patches, cfg.seed, self.bf16)

    def losses(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch["images"]  # (B, 3, S, S)
        targets = self.store.lookup(batch["slide"].cpu(), batch["patch"].cpu()).to(x.device)  # (B, E)
        features, projected = self.student(x)  # (B, D), (B, E)
        ema_features = self.ema(x)  # (B, D)
        return self_train_loss(projected, targets, features, ema_features, self.cfg.ema_weight)

    def batch_size(self, batch: dict) -> int:
        return int(batch["images"].shape[0])

    def nonfinite_message(self, loss: torch.Tensor, batch: dict, batch_idx: int) -> str:
        return (f"stage-2 loss became {loss.item()} at epoch {self.current_epoch + 1}, step {batch_idx + 1}; "
                "lower lr or use precision 32-true")

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        momentum = cosine_momentum(self.global_step, self.total_steps, self.cfg.momentum_start,
                                   self.cfg.momentum_end)
        self.ema.update(self.student.backbone, momentum)

    def on_train_epoch_end(self) -> None:
        self._validate(self.current_epoch + 1)  # the harness's EpochCheckpoint saves after this

    # ---- validation and checkpoints ----
    def _validate(self, epoch: int, n_boot: int = 0) -> None:
        if self.global_rank == 0 and self.evaluator is not None:
            start = time.perf_counter()
            result = self.evaluator(self.student, self.device, self.bf16, n_boot)
            entries = result.pop("entries", {})
            arrays = result.pop("arrays", {})
            if epoch == 0:
                self.initial_entries = entries
                self.initial_arrays = {k: v.tolist() for k, v in arrays.items()}
            means = self.train_means() if epoch else {}
            row = {"epoch": epoch, "step": int(self.global_step),
                   **{f"train_{t}": means.get(f"train_{t}", float("nan")) for t in self.TERMS}}
            row.update({k: v for k, v in result.items() if isinstance(v, (int, float))})
            row["lr"] = (self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers
                         else float("nan"))
            row["momentum"] = cosine_momentum(self.global_step, self.total_steps, self.cfg.momentum_start,
                                              self.cfg.momentum_end)
            row["train_seconds"] = self.epoch_seconds() if epoch else 0.0
            row["val_seconds"] = time.perf_counter() - start
            self.record(row)
            if self.progress:
                probes = (f", k-NN bacc {row['knn_bacc']:.3f}, linear bacc {row['linear_bacc']:.3f}"
                          if math.isfinite(row.get("knn_bacc", math.nan)) else "")  # no patch labels: none
                print(f"epoch {epoch}/{self.cfg.epochs}: val cosine {row['val_cosine']:.4f}{probes}",
                      flush=True)
            self.log("val_cosine", row["val_cosine"], rank_zero_only=True)
        self.trainer.strategy.barrier("selftrain-validate")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["selftrain_initial_entries"] = dict(self.initial_entries)
        checkpoint["selftrain_initial_arrays"] = dict(self.initial_arrays)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.initial_entries = dict(checkpoint.get("selftrain_initial_entries", {}))
        self.initial_arrays = dict(checkpoint.get("selftrain_initial_arrays", {}))

    def configure_optimizers(self):
        cfg = self.cfg
        decay, no_decay = [], []
        for name, p in self.student.backbone.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or name.endswith(NO_DECAY_SUFFIXES) else decay).append(p)
        proj_lr = cfg.proj_lr if cfg.proj_lr is not None else 10 * cfg.lr
        groups = [{"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
                  {"params": [p for p in self.student.proj.parameters() if p.requires_grad], "lr": proj_lr,
                   "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        total, warmup, floor = self.total_steps, cfg.warmup_steps, cfg.min_lr_ratio
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                     lambda s: warmup_cosine(s, total, warmup, floor))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
