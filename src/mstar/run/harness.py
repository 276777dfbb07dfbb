"""The one fit harness: a Lightning Trainer built the same way for every stage.

:func:`fit` takes a :class:`~mstar.run.module.RunModule` and the stage's settings and does what every stage
needs: device, precision and strategy; the per-epoch ``log.csv``; an optional TensorBoard logger
(``logger: tensorboard`` writes ``<run>/tensorboard/``); an atomic resume point per epoch
(``checkpoints/last.ckpt``) and resume from it; best-epoch selection on validation only
(:class:`~mstar.run.callbacks.BestEpoch`); and Lightning's banners and known-harmless warnings silenced for
the duration of the fit only.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from mstar.errors import MstarError
from mstar.run.callbacks import EpochBar, EpochCheckpoint
from mstar.run.fingerprint import environment_rank
from mstar.run.module import RunModule

LOGGERS = ("csv", "tensorboard")
PRECISIONS = ("auto", "32", "32-true", "bf16", "bf16-mixed", "16", "16-mixed", "64-true")
QUIET = (".*does not have many workers.*", ".*isinstance\\(treespec, LeafSpec\\).*",
         ".*module\\(s\\) in eval mode.*",  # frozen encoders (text encoder, EMA copy) on purpose
         ".*The number of training batches .* is smaller than the logging interval.*",
         ".*Checkpoint directory .* exists and is not empty.*")


def resolve_precision(precision: str, accelerator: str = "auto", cpu_bf16: bool = False) -> str:
    """Lightning's precision string: ``auto`` is bf16-mixed on a CUDA GPU that supports it; on the CPU
    bf16-mixed where ``cpu_bf16`` (the caller's stage was checked in bf16 and its workload gains: supervised
    ABMIL runs, large stage-1 runs; see :func:`one_process` for DDP) and the CPU runs bf16 natively and
    faster (:func:`mstar.utils.cpu_precision.cpu_precision`, which ``MSTAR_CPU_BF16=0/1`` overrides);
    32-true elsewhere.

    Raises:
        MstarError: An unknown precision.
    """
    precision = str(precision)
    if precision not in PRECISIONS:
        raise MstarError(f"config: 'precision' must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        gpu = torch.cuda.is_available() and accelerator != "cpu"
        if gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
        if cpu_bf16:
            from mstar.utils.cpu_precision import cpu_precision

            return "bf16-mixed" if cpu_precision().precision == "bf16" else "32-true"
        return "32-true"
    return {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}.get(precision, precision)


def one_process(settings: Any) -> bool:
    """Whether the run trains in one process (``devices`` 1): only then may ``auto`` choose bf16 on the CPU,
    since ranks of a CPU DDP run would each time the bf16 probe and could choose differently."""
    return getattr(settings, "devices", 1) in (None, 1, "1")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's GPU/TPU banners, tips and known-harmless warnings while the block runs."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in QUIET:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def make_logger(kind: str, run: Path, version: str = "") -> Any:
    """``False`` (the CSV log is written by the module) or a TensorBoard logger writing
    ``run/tensorboard``."""
    if kind == "csv":
        return False
    if kind != "tensorboard":
        raise MstarError(f"config: 'logger' must be one of {', '.join(LOGGERS)}; got {kind!r}")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise MstarError("logger=tensorboard needs the tensorboard package: "
                         "pip install 'mstar[tensorboard]'") from None
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(run), name="tensorboard", version=version, default_hp_metric=False)


@dataclass
class Fitted:
    """What :func:`fit` leaves: the trainer (global step, rank, world size) and whether it was interrupted."""

    trainer: L.Trainer
    precision: str

    @property
    def is_global_zero(self) -> bool:
        return bool(self.trainer.is_global_zero)


def fit(module: RunModule, settings: Any, run: Path | None, *, train_loader: Any = None,
        val_loader: Any = None, epochs: int | None = None, resume_from: Path | None = None,
        callbacks: Sequence[Any] = (),
        grad_clip: float | None = None, grad_clip_algorithm: str = "norm", progress: bool = True,
        log_name: str = "log.csv", logger_version: str = "", distributed_sampler: bool = True,
        cpu_bf16: bool = False, checkpoint_every_s: float = 0.0) -> Fitted:
    """Train ``module`` with the settings every stage shares.

    Args:
        module: The stage's module (its ``history`` is written to ``run / log_name`` after every epoch).
        settings: The stage's config; read: ``epochs``, ``precision``, ``accelerator``, ``devices``,
            ``strategy`` and ``logger`` (each optional, with the defaults auto, auto, 1, auto, csv).
        run: The run folder (``log.csv``, ``tensorboard/``); None keeps nothing on disk.
        train_loader, val_loader: Dataloaders (None: the module's own ``*_dataloader`` hooks).
        epochs: Overrides ``settings.epochs``.
        resume_from: A Lightning checkpoint written by :class:`EpochCheckpoint` every epoch; resumed from
            when it exists.
        checkpoint_every_s: Write ``resume_from`` only after epochs ending this many seconds after the last
            write (and after the last epoch); 0: every epoch.
        callbacks: Extra callbacks (e.g. :class:`~mstar.run.callbacks.BestEpoch`; tests interrupt runs).
        grad_clip: Gradient clipping threshold (None or 0: off).
        grad_clip_algorithm: ``norm`` or ``value``.
        progress: Lightning's progress bar.
        log_name: The log file's name inside ``run``.
        logger_version: Subfolder of ``tensorboard/`` (units of a cross-validated run).
        distributed_sampler: Let Lightning shard the loaders under DDP (stages with their own sharded
            sampler pass False).
        cpu_bf16: ``precision: auto`` may choose bf16-mixed on the CPU (see :func:`resolve_precision`).

    Raises:
        MstarError: The run was interrupted (re-running the command resumes it).
    """
    def get(key: str, default: Any) -> Any:
        value = getattr(settings, key, None)
        return default if value is None else value

    accelerator = get("accelerator", "auto")
    precision = resolve_precision(get("precision", "auto"), accelerator, cpu_bf16 and one_process(settings))
    extra = list(callbacks) + ([EpochBar()] if progress else [])
    if resume_from is not None:
        Path(resume_from).parent.mkdir(parents=True, exist_ok=True)
        # last: it saves the other callbacks' state of the epoch
        extra.append(EpochCheckpoint(resume_from, checkpoint_every_s))
    logger = make_logger(get("logger", "csv"), run, logger_version) if run is not None else False
    module.log_path = run / log_name if run is not None else None
    has_checkpoint = any(isinstance(c, Checkpoint) for c in extra)
    ckpt = str(resume_from) if resume_from is not None and Path(resume_from).exists() else None
    if ckpt is not None and progress and environment_rank() == 0:
        done = finished_epochs(ckpt)
        where = run if run is not None else "the run"
        print(f"resuming {where} after epoch {done if done is not None else '?'} ({Path(ckpt).name})",
              flush=True)
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=epochs if epochs is not None else get("epochs", 1), accelerator=accelerator,
            devices=get("devices", 1), strategy=get("strategy", "auto"), precision=precision, logger=logger,
            log_every_n_steps=1, enable_checkpointing=has_checkpoint, callbacks=extra,
            use_distributed_sampler=distributed_sampler, num_sanity_val_steps=0, enable_progress_bar=progress,
            enable_model_summary=False, gradient_clip_val=grad_clip or None,
            gradient_clip_algorithm=grad_clip_algorithm if grad_clip else None,
            limit_val_batches=None if val_loader is not None else 0,
            deterministic=True if not torch.cuda.is_available() else "warn",
            default_root_dir=str(run) if run is not None else None)
        try:
            trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt)
        except SystemExit:  # Lightning turns Ctrl-C into exit(1) after its teardown
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
    if trainer.interrupted:
        where = f" from {resume_from}" if resume_from is not None else ""
        raise MstarError(f"training interrupted; re-run the same command to resume{where}")
    return Fitted(trainer, precision)


def finished_epochs(ckpt: str | Path) -> int | None:
    """How many epochs a resume point holds (Lightning's ``epoch`` is the 0-based index of the last finished
    one); None when it cannot be read. Memory-mapped: the weights are not read."""
    try:
        blob = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=False)
        return int(blob["epoch"]) + 1
    except Exception:  # noqa: BLE001 - a message only; Lightning reports a bad file itself
        return None
