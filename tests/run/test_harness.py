"""The fit harness: named loss terms, the per-epoch log, TensorBoard, resume, and the non-finite check."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mstar.errors import MstarError
from mstar.run.harness import fit, resolve_precision
from mstar.run.module import RunModule


class Line(RunModule):
    """y = w x fitted by SGD; two named terms besides the total."""

    def __init__(self, poison_epoch: int | None = None):
        super().__init__()
        self.model = torch.nn.Linear(1, 1)
        self.poison_epoch = poison_epoch

    def losses(self, batch, batch_idx):
        x, y = batch
        mse = ((self.model(x) - y) ** 2).mean()
        if self.current_epoch == self.poison_epoch:
            mse = mse * float("nan")
        reg = 1e-3 * self.model.weight.pow(2).sum()
        return {"loss": mse + reg, "mse": mse, "reg": reg}

    def on_train_epoch_end(self):
        self.record({"epoch": self.current_epoch + 1, **self.train_means()})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 1, generator=g)
    return DataLoader(TensorDataset(x, 3 * x), batch_size=8)


def _settings(**kw):
    return SimpleNamespace(**{"epochs": 3, "precision": "32", "accelerator": "cpu", "logger": "csv", **kw})


def test_epoch_means_of_every_term_reach_log_csv(tmp_path):
    L.seed_everything(0, verbose=False)
    module = Line()
    fit(module, _settings(), tmp_path, train_loader=_loader(), progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert (list(log.columns) == ["epoch", "train_loss", "train_mse", "train_reg"]
            and list(log["epoch"]) == [1, 2, 3])
    assert (log["train_loss"] - log["train_mse"] - log["train_reg"]).abs().max() < 1e-6
    assert log["train_mse"].iloc[-1] < log["train_mse"].iloc[0] / 4  # it learns


def test_tensorboard_event_files_hold_the_logged_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    L.seed_everything(0, verbose=False)
    fit(Line(), _settings(logger="tensorboard"), tmp_path, train_loader=_loader(), progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"epoch/train_loss", "epoch/train_mse", "loss", "mse", "reg"} <= set(tags)
    logged = [e.value for e in events.Scalars("epoch/train_mse")]
    assert logged == pytest.approx(pd.read_csv(tmp_path / "log.csv")["train_mse"].tolist(), rel=1e-6)
    assert len(events.Scalars("mse")) == 3 * 4  # one point per step


def test_a_non_finite_loss_is_a_one_line_error_naming_epoch_and_step(tmp_path):
    with pytest.raises(MstarError,
                       match=r"^training loss became nan at epoch 2, step 1; lower the learning rate"):
        fit(Line(poison_epoch=1), _settings(), tmp_path, train_loader=_loader(), progress=False)


class Stop(L.Callback):
    def __init__(self, error: type[BaseException]):
        self.error = error

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise self.error("stop")


def test_resume_from_the_epoch_checkpoint_continues_bit_identically(tmp_path):
    L.seed_everything(0, verbose=False)
    full = Line()
    fit(full, _settings(), tmp_path / "full", train_loader=_loader(),
        resume_from=tmp_path / "full" / "last.ckpt", progress=False)
    L.seed_everything(0, verbose=False)
    with pytest.raises(RuntimeError, match="stop"):
        fit(Line(), _settings(), tmp_path / "cut", train_loader=_loader(),
            resume_from=tmp_path / "cut" / "last.ckpt", callbacks=[Stop(RuntimeError)], progress=False)
    resumed = Line()
    fit(resumed, _settings(), tmp_path / "cut", train_loader=_loader(),
        resume_from=tmp_path / "cut" / "last.ckpt", progress=False)
    assert torch.equal(full.model.weight, resumed.model.weight)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "log.csv"),
                                  pd.read_csv(tmp_path / "cut" / "log.csv"))


def test_a_checkpoint_interval_skips_short_epochs_but_never_the_last(tmp_path):
    L.seed_everything(0, verbose=False)
    with pytest.raises(RuntimeError, match="stop"):  # stopped at epoch 3: two short epochs, no write
        fit(Line(), _settings(), tmp_path, train_loader=_loader(), resume_from=tmp_path / "last.ckpt",
            callbacks=[Stop(RuntimeError)], progress=False, checkpoint_every_s=3600)
    assert not (tmp_path / "last.ckpt").exists()
    fit(Line(), _settings(), tmp_path, train_loader=_loader(), resume_from=tmp_path / "last.ckpt",
        progress=False, checkpoint_every_s=3600)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert [r["epoch"] for r in saved["mstar_history"]] == [1, 2, 3]  # the last epoch is always written


def test_ctrl_c_reaches_the_caller_as_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # not Lightning's SystemExit: the CLI then says how to resume
        fit(Line(), _settings(), tmp_path, train_loader=_loader(), callbacks=[Stop(KeyboardInterrupt)],
            progress=False)


def test_precision_resolution():
    assert resolve_precision("auto", "cpu") == "32-true" and resolve_precision("32") == "32-true"
    assert resolve_precision("bf16") == "bf16-mixed"
    with pytest.raises(MstarError, match="'precision' must be one of"):
        resolve_precision("fp8")


def test_cpu_bf16_training_only_where_checked_and_the_cpu_runs_it(monkeypatch):
    from mstar.utils import cpu_precision as cp

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with cp.pinned_cpu_precision("bf16"):
        assert resolve_precision("auto", "cpu", cpu_bf16=True) == "bf16-mixed"
        assert resolve_precision("auto", "auto", cpu_bf16=True) == "bf16-mixed"
        assert resolve_precision("auto", "cpu") == "32-true"  # a stage not checked in bf16 stays fp32
        assert resolve_precision("32", "cpu", cpu_bf16=True) == "32-true"  # asked for: obeyed
        assert cp.cpu_precision().precision == "bf16"
    assert cp.cpu_precision().precision == "fp32"  # restored (tests/conftest.py pins fp32)
    with cp.pinned_cpu_precision("fp32"):
        assert resolve_precision("auto", "cpu", cpu_bf16=True) == "32-true"


class BarLabels(L.Callback):
    """The progress bar's label during each epoch."""

    def __init__(self):
        self.seen: list[str] = []

    def on_train_batch_end(self, trainer, *args):
        bar = trainer.progress_bar_callback
        self.seen.append(bar.progress.tasks[bar.train_progress_bar_id].description.strip())


def test_the_progress_bar_counts_epochs_from_one_as_the_log_does(tmp_path):
    labels = BarLabels()
    fit(Line(), _settings(), tmp_path, train_loader=_loader(), progress=True, callbacks=[labels])
    assert sorted(set(labels.seen)) == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]  # Lightning's: "Epoch 0/2"


def test_a_resumed_run_says_after_which_epoch(tmp_path, capsys):
    from mstar.run.harness import finished_epochs

    L.seed_everything(0, verbose=False)
    with pytest.raises(RuntimeError, match="stop"):
        fit(Line(), _settings(), tmp_path, train_loader=_loader(), resume_from=tmp_path / "last.ckpt",
            callbacks=[Stop(RuntimeError)], progress=False)
    done = finished_epochs(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert done == len(saved["mstar_history"]) >= 1
    capsys.readouterr()
    fit(Line(), _settings(), tmp_path, train_loader=_loader(), resume_from=tmp_path / "last.ckpt",
        progress=True)
    assert f"resuming {tmp_path} after epoch {done} (last.ckpt)" in capsys.readouterr().out
