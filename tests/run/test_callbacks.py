"""Best-epoch selection on validation only, and the atomic per-epoch resume point."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from mstar.run.callbacks import BestEpoch


class _Module:
    def __init__(self):
        self.model = torch.nn.Linear(1, 1)
        self.history: list[dict] = []


def _epoch(cb, module, epoch, score=None, loss=None):
    """Record an epoch row (no score: not validated) and run the callback's epoch end."""
    module.model.weight.data.fill_(epoch)
    row = {"epoch": epoch}
    if score is not None:
        row.update(val_auc=score, val_loss=loss)
    module.history.append(row)
    trainer = SimpleNamespace(current_epoch=epoch - 1, should_stop=False)
    cb.on_train_epoch_end(trainer, module)
    return trainer.should_stop


def test_ties_on_the_score_are_broken_by_lower_loss_and_patience_stops():
    cb, module = BestEpoch("val_auc", patience=2), _Module()
    assert not _epoch(cb, module, 1, 0.9, 1.0)
    assert not _epoch(cb, module, 2, 1.0, 0.8)   # better score
    assert not _epoch(cb, module, 3, 1.0, 0.5)   # same score, lower loss: better
    assert not _epoch(cb, module, 4, 1.0, 0.6)   # same score, higher loss: stale 1
    assert _epoch(cb, module, 5, 0.95, 0.1)      # worse score: stale 2 -> stop
    assert cb.best_epoch == 3 and cb.best_state["weight"].item() == 3


def test_later_epoch_wins_a_tie_and_unvalidated_epochs_are_skipped():
    cb, module = BestEpoch("val_auc", patience=None, tie="later", tol=0.0), _Module()
    _epoch(cb, module, 1, 0.5, 0.0)
    _epoch(cb, module, 2)                        # not validated: neither better nor stale
    _epoch(cb, module, 3, 0.5, 9.0)              # equal score: the later epoch wins whatever its loss
    assert cb.best_epoch == 3 and cb.stale == 0
    _epoch(cb, module, 4, 0.5 - 1e-12, 0.0)      # tol 0: a hair lower is worse
    assert cb.best_epoch == 3 and cb.stale == 1


def test_non_finite_scores_never_win_over_finite_ones():
    cb, module = BestEpoch("val_auc", patience=5), _Module()
    _epoch(cb, module, 1, math.nan, 1.0)         # an undefined score is -inf: not better than nothing
    assert cb.best_state is None and cb.stale == 1
    _epoch(cb, module, 2, 0.6, 1.0)
    _epoch(cb, module, 3, math.inf * -1, 0.1)
    assert cb.best_epoch == 2
