from types import SimpleNamespace

import torch

from mstar.tasks.selection import BestEpoch


class _Module:
    def __init__(self):
        self.model = torch.nn.Linear(1, 1)


def _epoch(cb, module, epoch, score, loss):
    module.model.weight.data.fill_(epoch)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=epoch - 1, should_stop=False,
                              callback_metrics={"val_score": torch.tensor(score), "val_loss": torch.tensor(loss)})
    cb.on_validation_end(trainer, module)
    return trainer.should_stop


def test_ties_on_the_score_are_broken_by_lower_loss_and_patience_stops():
    cb, module = BestEpoch(patience=2), _Module()
    assert not _epoch(cb, module, 1, 0.9, 1.0)
    assert not _epoch(cb, module, 2, 1.0, 0.8)   # better score
    assert not _epoch(cb, module, 3, 1.0, 0.5)   # same score, lower loss: better
    assert not _epoch(cb, module, 4, 1.0, 0.6)   # same score, higher loss: stale 1
    assert _epoch(cb, module, 5, 0.95, 0.1)      # worse score: stale 2 -> stop
    assert cb.best_epoch == 3 and cb.best_state["weight"].item() == 3
