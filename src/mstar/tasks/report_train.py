"""Training of the report model on the run harness (HistGen's recipe).

Recipe (HistGen via mSTAR's ``train_TCGA.sh``): teacher forcing, token NLL averaged over the non-pad
target tokens (``<eos>`` included), Adam (amsgrad, weight decay 5e-5, lr 1e-4), gradients clipped by
value at 0.1, StepLR(step 1, gamma 0.8) per epoch; after each epoch the validation reports are decoded
(beam 3) and scored with pycocoevalcap BLEU (``mstar.eval.text_metrics``, METEOR off for speed); the
epoch with the best validation BLEU-4 is kept (a later epoch wins a tie, as upstream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from mstar.errors import MstarError
from mstar.eval.text_metrics import report_generation_metrics
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.inference import ReportItem, generate_reports, pad_bags
from mstar.models.report.vocab import PAD_ID, Vocabulary, clean_report
from mstar.run.callbacks import BestEpoch
from mstar.run.harness import fit
from mstar.run.module import RunModule
from mstar.run.sharding import gather_union, rank_share
from mstar.utils.seeds import derive_seed

log = logging.getLogger(__name__)


def build_items(features: Mapping[str, torch.Tensor], reports: Mapping[str, str | None],
                ids: Sequence[str] | None = None) -> tuple[list[ReportItem], dict[str, int]]:
    """Pair slides with their reports, skipping (and counting) missing or empty reports.

    Args:
        features: Slide id → ``(N, D)`` patch features.
        reports: Slide id → report text (None, absent, blank or punctuation-only counts as no report).
        ids: Slides to use, in order (default: every slide in ``features``).

    Returns:
        The items and ``{"used", "missing_report", "empty_report"}`` counts.
    """
    items, counts = [], {"used": 0, "missing_report": 0, "empty_report": 0}
    for sid in (list(features) if ids is None else ids):
        if sid not in features:
            raise MstarError(f"unknown slide id '{sid}': no patch features for it")
        text = reports.get(sid)
        if text is None:
            counts["missing_report"] += 1
        elif not clean_report(text):
            counts["empty_report"] += 1
        else:
            items.append(ReportItem(sid, torch.as_tensor(features[sid]), str(text)))
            counts["used"] += 1
    return items, counts


def token_batch(vocab: Vocabulary, reports: Sequence[str], max_len: int) -> torch.Tensor:
    """``(B, T)`` ``[<bos>, tokens, <eos>]`` rows padded with ``<pad>``."""
    seqs = [vocab.encode(r, max_len=max_len) for r in reports]
    out = torch.full((len(seqs), max(map(len, seqs))), PAD_ID, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq)
    return out


def report_loss(model: ReportGenerator, feats: torch.Tensor, mask: torch.Tensor,
                tokens: torch.Tensor) -> torch.Tensor:
    """Teacher-forced token NLL (mean over non-pad targets) of ``tokens`` ``(B, T)``."""
    logits = model(feats, mask, tokens[:, :-1])  # (B, T-1, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1),
                           ignore_index=PAD_ID)


class ShuffledBatches(Sampler):
    """Index batches of one epoch: a permutation drawn from ``generator`` (advanced once per epoch), cut in
    consecutive chunks of ``batch_size``; under DDP, this rank's share of it.

    With ``W`` ranks the permutation is padded (by wrapping) to a multiple of ``W`` and rank ``r`` takes
    positions ``r, r + W, ...`` before batching, so every rank runs the same number of steps and a step's
    ``W`` batches together are the one process's batch of ``W · batch_size`` (as stage 1's sampler). Every
    rank draws the same permutation: the generators are seeded alike and advanced alike.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.batch_size, self.generator, self.rank, self.world = n, batch_size, generator, rank, world

    def __len__(self) -> int:
        return -(-self._per_rank() // self.batch_size)

    def _per_rank(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        mine = rank_share(order, self.rank, self.world)
        for b in range(0, len(mine), self.batch_size):
            yield mine[b:b + self.batch_size]


class ReportModule(RunModule):
    """Teacher-forced training of a :class:`ReportGenerator`; validation BLEU after each validated epoch."""

    PROGRESS = {"loss": "train_loss"}
    WEIGHT_BY_BATCH = True

    def __init__(self, model: ReportGenerator, vocab: Vocabulary, train_items: Sequence[ReportItem],
                 val_items: Sequence[ReportItem], lr: float, weight_decay: float, gamma: float,
                 beam_size: int, val_max_len: int | None, val_every: int, batch_size: int = 1, seed: int = 0,
                 on_epoch_end: Callable[[dict[str, Any], ReportGenerator], None] | None = None) -> None:
        super().__init__()
        self.model, self.vocab = model, vocab
        self.train_items, self.val_items = list(train_items), list(val_items)
        self.items_per_batch, self.seed = batch_size, seed
        self.lr, self.weight_decay, self.gamma = lr, weight_decay, gamma
        self.beam_size, self.val_max_len, self.val_every = beam_size, val_max_len, val_every
        self.on_epoch_end_fn = on_epoch_end
        self.refs = {it.slide_id: clean_report(it.report) for it in self.val_items}
        self.generated: dict[int, dict[str, str]] = {}
        self.shuffle = torch.Generator().manual_seed(seed)  # the batch order's (carried in checkpoints)

    def train_dataloader(self) -> DataLoader:
        """This rank's batches of the shuffled training slides (:class:`ShuffledBatches`)."""
        batches = ShuffledBatches(len(self.train_items), self.items_per_batch, self.shuffle,
                                  self.global_rank, self.trainer.world_size)
        return DataLoader(self.train_items, batch_sampler=batches, collate_fn=list,
                          generator=torch.Generator())  # never draws from the global RNG

    def losses(self, batch: list[ReportItem], batch_idx: int) -> dict[str, torch.Tensor]:
        feats, mask = pad_bags([it.features.to(device=self.device, dtype=torch.float32) for it in batch])
        tokens = token_batch(self.vocab, [it.report for it in batch], self.model.max_len).to(self.device)
        return {"loss": report_loss(self.model, feats, mask, tokens)}

    def batch_size(self, batch: list[ReportItem]) -> int:
        return len(batch)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # items move inside losses()
        return batch

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.trainer.world_size > 1:  # each rank its own dropout, the same after a resume
            torch.manual_seed(derive_seed(self.seed, self.current_epoch, self.global_rank, 15485863))
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # the epoch's rate
                                                                           # (stepped before the end)

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        row: dict[str, Any] = {"epoch": epoch, "train_loss": self._mean_loss(), "lr": self._epoch_lr}
        if epoch % self.val_every == 0 or epoch == self.trainer.max_epochs:
            world, rank = self.trainer.world_size, self.global_rank  # each rank decodes its share
            generated = gather_union(generate_reports(self.model, self.vocab, self.val_items[rank::world],
                                                      beam_size=self.beam_size, max_len=self.val_max_len))
            scores = report_generation_metrics(generated, self.refs, meteor=False).scores
            row.update({f"val_{k}": v for k, v in scores.items()}, val_reports=len(generated))
            self.generated[epoch] = generated
        row["seconds"] = self.epoch_seconds()
        self.record(row)
        if self.on_epoch_end_fn is not None and self.trainer.is_global_zero:
            self.on_epoch_end_fn(row, self.model)

    def _mean_loss(self) -> float:
        """The epoch's training loss averaged over every rank's slides."""
        if self.trainer.world_size == 1:
            return self.train_means()["train_loss"]
        pair = torch.tensor([self._sums["loss"], self._weight], dtype=torch.float64, device=self.device)
        pair = self.trainer.strategy.reduce(pair, reduce_op="sum")  # (2,) summed over ranks
        return float(pair[0] / pair[1])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Besides weights, optimiser and ``history``: the validation reports and the random states (the
        batch order's generator, torch's for dropout), so a resumed run continues as if never stopped."""
        super().on_save_checkpoint(checkpoint)
        on_gpu = self.device.type == "cuda"  # never touches CUDA in a CPU run on a GPU machine
        checkpoint["mstar_report"] = {
            "generated": self.generated, "torch_rng": torch.get_rng_state(),
            "shuffle_rng": None if self.shuffle is None else self.shuffle.get_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if on_gpu else None,
            "world_size": self.trainer.world_size}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("mstar_report", {})
        self.generated = {int(k): v for k, v in state.get("generated", {}).items()}
        if state.get("torch_rng") is not None:
            torch.set_rng_state(state["torch_rng"])
        if state.get("shuffle_rng") is not None:
            self.shuffle.set_state(state["shuffle_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":  # this device's own state
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        before, now = int(state.get("world_size", 1)), self.trainer.world_size
        if before != now and self.trainer.is_global_zero:
            log.warning("resuming a report run trained on %d device(s) on %d: each step's batch changes from "
                        "%d to %d slides", before, now, before * self.items_per_batch,
                        now * self.items_per_batch)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                               amsgrad=True)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=self.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


@dataclass
class ReportFit:
    """Outcome of :func:`fit_report_model`.

    Attributes:
        history: One row per epoch: ``epoch, train_loss, lr, seconds, val_bleu_1..4, val_rouge_l, val_cider``.
        best_epoch: Epoch (1-based) with the best validation BLEU-4.
        best_bleu_4: That BLEU-4.
        best_state: The model's ``state_dict`` at that epoch.
        val_generated: Validation reports generated at the best epoch.
        world_size: Processes that trained (DDP ranks).
        is_global_zero: This process is rank 0 (the one that writes the run's outputs).
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_bleu_4: float
    best_state: dict[str, torch.Tensor]
    val_generated: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    is_global_zero: bool = True


def fit_report_model(model: ReportGenerator, train_items: Sequence[ReportItem],
                     val_items: Sequence[ReportItem], vocab: Vocabulary, epochs: int = 40,
                     lr: float = 1e-4, weight_decay: float = 5e-5, gamma: float = 0.8, batch_size: int = 1,
                     grad_clip_value: float | None = 0.1, beam_size: int = 3, val_max_len: int | None = None,
                     val_every: int = 1, seed: int = 0, restore_best: bool = True,
                     on_epoch_end: Callable[[dict[str, Any], ReportGenerator], None] | None = None,
                     settings: Any = None, run: Path | None = None, progress: bool = False,
                     resume_from: Path | None = None, checkpoint_every_s: float = 30.0) -> ReportFit:
    """Train with teacher forcing; keep the epoch with the best validation BLEU-4.

    Args:
        model: The report model.
        train_items: Training slides with non-empty reports (see :func:`build_items`).
        val_items: Validation slides with non-empty reports.
        vocab: Vocabulary built from the training reports.
        epochs: Epochs (HistGen/mSTAR: 40).
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (5e-5).
        gamma: StepLR decay per epoch (0.8).
        batch_size: Slides per step (HistGen: 1; bags are zero-padded with a mask).
        grad_clip_value: Clip gradients by value (HistGen: 0.1; None: off).
        beam_size: Beam width of the validation decoding (HistGen: 3; 1 is faster).
        val_max_len: Most tokens per validation report (default: the model's ``max_len``).
        val_every: Validate every this many epochs (and after the last); HistGen: every epoch. Only
            validated epochs can be selected.
        seed: Seed of the shuffling.
        restore_best: Load the best state into ``model`` before returning.
        on_epoch_end: Called with the history row and the model after each epoch.
        settings: Device, precision and logger settings for the harness (a ``ReportConfig``; default
            CPU-or-GPU auto, 32-bit on CPU, log only).
        run: Run folder for ``log.csv`` (and TensorBoard); None keeps nothing on disk.
        progress: Lightning's progress bar.
        resume_from: The epoch checkpoint (written after every epoch; training resumes from it when it
            exists, bit-identical on the CPU to a run never stopped).
        checkpoint_every_s: Write the resume point after the first epoch ending this long after the last
            write, and after the last epoch (0: every epoch); short epochs then cost no checkpoint each.

    Returns:
        :class:`ReportFit`.
    """
    if not train_items:
        raise MstarError("no training slides with a report: report generation cannot be trained")
    if not val_items:
        raise MstarError("no validation slides with a report: the best epoch is chosen by validation BLEU-4")
    module = ReportModule(model, vocab, train_items, val_items, lr, weight_decay, gamma, beam_size,
                          val_max_len, val_every, batch_size, seed, on_epoch_end)
    best = BestEpoch("val_bleu_4", patience=None, tie="later", tol=0.0)
    fitted = fit(module, settings, run, epochs=epochs, callbacks=[best], resume_from=resume_from,
                 grad_clip=grad_clip_value, grad_clip_algorithm="value", progress=progress,
                 checkpoint_every_s=checkpoint_every_s, distributed_sampler=False)  # its own sharding
    if best.best_state is None:
        raise MstarError("report training validated no epoch; check val_every")
    if restore_best:
        model.load_state_dict(best.best_state)
    return ReportFit(module.history, best.best_epoch, best.best_score, best.best_state,
                     module.generated.get(best.best_epoch, {}), fitted.trainer.world_size,
                     fitted.is_global_zero)
