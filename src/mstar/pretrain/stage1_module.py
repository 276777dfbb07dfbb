"""Lightning module of stage 1: gathered multimodal loss, AdamW with param groups, warm-up + cosine, and
held-out retrieval at the end of every ``val_every``-th epoch.

Validation does not use Lightning's validation loop: every rank embeds the whole (small) held-out split
itself and computes the same figures, so nothing has to be gathered and DDP padding never duplicates a
held-out slide. The epoch's row (loss terms, held-out figures, temperature, lr) goes to
:meth:`~mstar.run.module.RunModule.record`, hence to ``log.csv`` and the loggers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mstar.pretrain.distributed import gather_no_grad, gather_with_grad
from mstar.pretrain.losses import stage1_loss
from mstar.pretrain.stage1_data import EpochSampler, Stage1Dataset, collate_stage1
from mstar.run.module import RunModule
from mstar.run.schedules import warmup_cosine
from mstar.utils.seeds import derive_seed

LOGGED = ("loss", "contrastive", "triplet", "preserve", "slide_report", "slide_gene", "report_gene")
SHORT = {"slide_report": "s_r", "slide_gene": "s_g", "report_gene": "r_g", "triplet": "tri",
         "preserve": "keep"}


class PooledFeatureHead(nn.Module):
    """Reads the standardised mean of a slide's patch features back from its normalised embedding.

    The "preserve" term of stage 1 (``preserve_weight``): the triplet term pulls every slide of a cancer type
    together and the contrastive terms keep only what the other modalities share, so nothing else keeps the
    within-type variation of the slides (grade, risk, stain). Asking a linear map of the unit embedding to
    recover the pooled input features keeps it (docs/pretraining.md, "What the slide embedding keeps"). The
    head lives in the training module, not in the saved stage-1 model, whose layout stays upstream's.

    Args:
        dim: Embedding width.
        in_dim: Patch feature width ``D``.
        mean: ``(D,)`` mean of the training slides' pooled features.
        std: ``(D,)`` their standard deviation (floored).
    """

    def __init__(self, dim: int, in_dim: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, in_dim)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-6))

    def loss(self, z_slide: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
             has_slide: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the slides present; an exact 0 (still tied to the inputs) without any."""
        keep = has_slide.bool() & mask.any(dim=1)  # (B,)
        pred = self.linear(F.normalize(z_slide.float(), dim=-1))  # (B, D)
        if not bool(keep.any()):
            return pred.sum() * 0.0
        m = mask[..., None].to(x.dtype)  # (B, N, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        target = (pooled.float() - self.mean) / self.std  # (B, D)
        return F.mse_loss(pred[keep], target[keep])


def pooled_feature_stats(dataset: Stage1Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(mean, std)`` ``(D,)`` of the pooled patch features of a split's slides (None: no slide)."""
    pooled = [dataset.bags.bag(s).float().mean(0) for s, ok in zip(dataset.items.slides,
                                                                    dataset.items.has_slide) if ok] \
        if dataset.bags is not None else []
    if not pooled:
        return None
    table = torch.stack(pooled)  # (S, D)
    return table.mean(0), table.std(0, unbiased=False)


def stage1_step(model, batch: dict, margin: float = 0.3, triplet_weight: float = 1.0,
                preserve: PooledFeatureHead | None = None,
                preserve_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Embed the local batch, gather embeddings over ranks (with gradients) and compute every loss term.

    ``preserve`` adds ``preserve_weight`` x the pooled-feature term of the local slides (not gathered)."""
    z = model(batch)
    zs, zr, zg = (gather_with_grad(z[k].float()) for k in ("slide", "report", "gene"))  # (B_global, dim)
    has_report, has_gene, has_slide, labels = (gather_no_grad(batch[k]) for k in ("has_report", "has_gene",
                                                                                "has_slide", "labels"))
    out = stage1_loss(zs, zr, zg, has_report, has_gene, labels, model.logit_scale(), margin, triplet_weight,
                      has_slide)
    out["preserve"] = torch.zeros((), device=out["loss"].device)
    if preserve is not None:
        out["preserve"] = preserve.loss(z["slide"], batch["x"], batch["mask"], batch["has_slide"])
        out["loss"] = out["loss"] + preserve_weight * out["preserve"]
    return out


def epoch_line(row: dict, epochs: int, entries: dict) -> str:
    """``epoch 3/10  loss 4.21 (s_r 1.30 s_g 1.41 r_g 1.20 tri 0.30)  s→r R@1 0.40 (chance 0.07)  2.1 s``."""
    shown = [k for k in ("slide_report", "slide_gene", "report_gene", "triplet", "preserve")
             if np.isfinite(row.get(f"train_{k}", float("nan"))) and (k != "preserve" or row[f"train_{k}"])]
    terms = " ".join(f"{SHORT[k]} {row[f'train_{k}']:.3f}" for k in shown)
    text = f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.3f} ({terms})"
    for direction, short in (("slide_to_report", "s→r"), ("slide_to_gene", "s→g")):
        entry = entries.get(f"{direction}/recall@1")
        if entry is not None and np.isfinite(entry["value"]) and row.get(f"{direction}/recall@1") is not None:
            text += f"  {short} R@1 {entry['value']:.2f} (chance {entry['chance']:.2f})"
    knn = entries.get("slide_knn_accuracy")
    if knn is not None and row.get("slide_knn_accuracy") is not None:
        text += f"  k-NN type acc {knn['value']:.2f}"
    return f"{text}  {row['seconds']:.1f} s"


class Stage1Module(RunModule):
    """Trains a :class:`~mstar.pretrain.stage1_model.Stage1Model`.

    Args:
        model: The stage-1 model.
        cfg: A :class:`~mstar.pretrain.stage1_config.Stage1Config` (optimiser, schedule, loss settings).
        train_data: Training items (random patch subsets).
        evaluate: ``evaluate(model, device) -> {metric: entry}`` on the held-out split, or None.
        verbose: Print one line per epoch.
    """

    PROGRESS = SHORT

    def __init__(self, model, cfg, train_data: Stage1Dataset, evaluate=None, verbose: bool = False) -> None:
        super().__init__()
        self.model, self.cfg, self.train_data, self.evaluate = model, cfg, train_data, evaluate
        self.verbose = verbose
        self.last_eval: dict = {}
        self.preserve = None
        stats = pooled_feature_stats(train_data) if cfg.preserve_weight > 0 \
            and model.has_slide_branch else None
        if stats is not None:
            self.preserve = PooledFeatureHead(model.dim, model.in_dim, *stats)

    def train_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = EpochSampler(len(self.train_data), self.cfg.seed, rank, world)
        drop_last = len(sampler) >= self.cfg.batch_size
        return DataLoader(self.train_data, batch_size=self.cfg.batch_size, sampler=sampler,
                          drop_last=drop_last, collate_fn=collate_stage1, num_workers=self.cfg.num_workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        """Reseed torch from ``(seed, step, rank)``: dropout and the Performer's feature redraws then depend
        on the step alone, not on what this process ran before (a resumed run is bit-identical)."""
        torch.manual_seed(derive_seed(self.cfg.seed, self.global_step, self.global_rank, 104729))

    def losses(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        out = stage1_step(self.model, batch, self.cfg.triplet_margin, self.cfg.triplet_weight,
                          self.preserve, self.cfg.preserve_weight)
        return {k: out[k] for k in LOGGED}

    def nonfinite_message(self, loss: torch.Tensor, batch: dict, batch_idx: int) -> str:
        """Where the loss became NaN/inf and, when they are to blame, which slides' features."""
        bad = [s for s, x, m in zip(batch["slides"], batch["x"], batch["mask"])
               if not torch.isfinite(x[m]).all()]
        where = f"stage-1 loss became {loss.item()} at epoch {self.current_epoch + 1}, step {batch_idx + 1}"
        if bad:
            return (f"{where}: features of slide(s) {', '.join(bad[:5])} contain NaN/inf; "
                    "re-extract them or drop them")
        return f"{where}; lower --lr (or set grad_clip) and check the RNA table for extreme values"

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        row = {"epoch": epoch, **self.train_means()}
        if self.evaluate is not None and (epoch % self.cfg.val_every == 0
                                          or epoch == self.trainer.max_epochs):
            self.last_eval = self.evaluate(self.model, self.device)
            row.update({k: v["value"] for k, v in self.last_eval.items()})
        row["temperature"] = float(1.0 / self.model.logit_scale().detach())
        row["lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
        row["seconds"] = round(self.epoch_seconds(), 3)
        self.record(row)
        if self.verbose and self.trainer.is_global_zero:
            print(epoch_line(row, self.trainer.max_epochs, self.last_eval), flush=True)

    def configure_optimizers(self):
        text_layers, decay, no_decay = [], [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("text_encoder."):
                text_layers.append(p)
            elif p.ndim < 2 or name.startswith("logit_scale") or name.endswith("cls_token"):
                no_decay.append(p)
            else:
                decay.append(p)
        if self.preserve is not None:
            decay.append(self.preserve.linear.weight)
            no_decay.append(self.preserve.linear.bias)
        groups = [{"params": decay, "lr": self.cfg.lr, "weight_decay": self.cfg.weight_decay},
                  {"params": no_decay, "lr": self.cfg.lr, "weight_decay": 0.0}]
        if text_layers:
            groups.append({"params": text_layers, "lr": self.cfg.text_lr,
                           "weight_decay": self.cfg.weight_decay})
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.cfg.warmup_fraction * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
