"""Plain-PyTorch training of the report model (HistGen's recipe), for the CLI/Lightning wiring to call.

Recipe (HistGen via mSTAR's ``train_TCGA.sh``): teacher forcing, token NLL averaged over the non-pad
target tokens (``<eos>`` included), Adam (amsgrad, weight decay 5e-5, lr 1e-4), gradients clipped by
value at 0.1, StepLR(step 1, gamma 0.8) per epoch; after each epoch the validation reports are decoded
(beam 3) and scored with pycocoevalcap BLEU (``mstar.eval.text_metrics``, METEOR off for speed); the
epoch with the best validation BLEU-4 is kept (a later epoch wins a tie, as upstream).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.eval.text_metrics import report_generation_metrics
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.inference import ReportItem, generate_reports, pad_bags
from mstar.models.report.vocab import PAD_ID, Vocabulary, clean_report


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


@dataclass
class FitResult:
    """Outcome of :func:`fit_report_model`.

    Attributes:
        history: One row per epoch: ``epoch, train_loss, lr, seconds, val_bleu_1..4, val_rouge_l, val_cider``.
        best_epoch: Epoch (1-based) with the best validation BLEU-4.
        best_bleu_4: That BLEU-4.
        best_state: The model's ``state_dict`` at that epoch (CPU tensors).
        val_generated: Validation reports generated at the best epoch.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_bleu_4: float
    best_state: dict[str, torch.Tensor]
    val_generated: dict[str, str] = field(default_factory=dict)


def fit_report_model(model: ReportGenerator, train_items: Sequence[ReportItem],
                     val_items: Sequence[ReportItem], vocab: Vocabulary, epochs: int = 40,
                     lr: float = 1e-4, weight_decay: float = 5e-5, gamma: float = 0.8, batch_size: int = 1,
                     grad_clip_value: float | None = 0.1, beam_size: int = 3, val_max_len: int | None = None,
                     val_every: int = 1, seed: int = 0, restore_best: bool = True,
                     on_epoch_end: Callable[[dict[str, Any], ReportGenerator], None] | None = None,
                     ) -> FitResult:
    """Train with teacher forcing; keep the epoch with the best validation BLEU-4.

    Args:
        model: The report model (its device is used).
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
        on_epoch_end: Called with the history row and the model after each epoch (run-dir writing).

    Returns:
        :class:`FitResult`.
    """
    if not train_items:
        raise MstarError("no training slides with a report: report generation cannot be trained")
    if not val_items:
        raise MstarError("no validation slides with a report: the best epoch is chosen by validation BLEU-4")
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    gen = torch.Generator().manual_seed(seed)
    refs = {it.slide_id: clean_report(it.report) for it in val_items}
    max_len = model.max_len
    history: list[dict[str, Any]] = []
    best: FitResult | None = None
    for epoch in range(1, epochs + 1):
        start, total, count = time.perf_counter(), 0.0, 0
        model.train()
        order = torch.randperm(len(train_items), generator=gen).tolist()
        for b in range(0, len(order), batch_size):
            chunk = [train_items[i] for i in order[b:b + batch_size]]
            feats, mask = pad_bags([it.features.to(device=device, dtype=torch.float32) for it in chunk])
            tokens = token_batch(vocab, [it.report for it in chunk], max_len).to(device)
            loss = report_loss(model, feats, mask, tokens)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip_value is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip_value)
            opt.step()
            total, count = total + float(loss.detach()) * len(chunk), count + len(chunk)
        row = {"epoch": epoch, "train_loss": total / count, "lr": opt.param_groups[0]["lr"]}
        sched.step()
        if epoch % val_every == 0 or epoch == epochs:
            generated = generate_reports(model, vocab, val_items, beam_size=beam_size, max_len=val_max_len)
            scores = report_generation_metrics(generated, refs, meteor=False).scores
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if "val_bleu_4" in row and (best is None or row["val_bleu_4"] >= best.best_bleu_4):
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best = FitResult(history, epoch, row["val_bleu_4"], state, generated)
        if on_epoch_end is not None:
            on_epoch_end(row, model)
    assert best is not None
    if restore_best:
        model.load_state_dict(best.best_state)
    best.history = history
    return best

