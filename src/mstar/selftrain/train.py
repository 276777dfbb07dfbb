"""``mstar self-train``: stage 2, self-taught training of the patch encoder, in a resumable run directory.

``<out>/``::

    config.yaml                 resolved configuration
    targets/<slide>.npy|.json   teacher targets from the stored features (float16, cached, reused on resume)
    checkpoints/last.ckpt       Lightning checkpoint after the latest finished epoch (the resume point)
    encoder/<name>.pth + .json  the new patch encoder: plain timm state_dict + mstar.encoder/1 sidecar
    encoder/proj.pt             the student's projection, stage-1 layout
    log.csv                     per epoch (0 = before training): loss terms, held-out cosine, probes, lr, momentum
    figures/validation_curves.png
    metrics.json                initial vs final held-out metrics with CIs (written last: marks the run finished)

Re-running the command resumes from ``last.ckpt``; a finished run is not retrained; ``overwrite`` restarts.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings

import lightning as L
import torch

from mstar.errors import MstarError
from mstar.selftrain.config import SelfTrainConfig

log = logging.getLogger(__name__)
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
QUIET = (".*does not have many workers.*", ".*isinstance\\(treespec, LeafSpec\\).*",
         ".*module\\(s\\) in eval mode at the start of training.*")  # the last one: the EMA copy, on purpose


def resolve_precision(cfg: SelfTrainConfig) -> str:
    """``auto``: bf16-mixed on a GPU (when it has bf16), 32-true otherwise."""
    if str(cfg.precision) == "32":
        return "32-true"
    if cfg.precision != "auto":
        return str(cfg.precision)
    gpu = torch.cuda.is_available() and cfg.accelerator != "cpu"
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def change_entries(initial: dict, final: dict, n_boot: int, seed: int) -> dict:
    """Final minus initial on the same held-out patches, with paired bootstrap CIs."""
    import numpy as np

    from mstar.eval.bootstrap import bootstrap_ci_weighted, weighted_mean_stats
    from mstar.selftrain.probe import paired_change_ci

    out: dict = {}
    if not n_boot or not initial or not final:
        return out
    before, after = np.asarray(initial.get("cosine", [])), np.asarray(final.get("cosine", []))
    if before.size and before.shape == after.shape:
        out["cosine"] = bootstrap_ci_weighted(weighted_mean_stats({"d": after - before}), before.size, n_boot, seed)["d"]
    y = np.asarray(initial.get("labels", []), dtype=str)
    for name in ("knn", "linear"):
        if name in initial and name in final and len(y):
            out[f"{name}_balanced_accuracy"] = paired_change_ci(y, np.asarray(initial[name], dtype=str),
                                                                np.asarray(final[name], dtype=str), n_boot, seed)
    return out


def _prepare(cfg: SelfTrainConfig):
    """Slides, split, teacher, labels, student: everything checked before any training starts."""
    from mstar.features.checkpoints import sha256_file
    from mstar.selftrain.cohort import features_dim, load_slides, split_slides
    from mstar.selftrain.labels import patch_labels
    from mstar.selftrain.module import RunPlan
    from mstar.selftrain.student import build_student
    from mstar.selftrain.teacher import Teacher

    slides = load_slides(cfg.tiles, cfg.features, cfg.slides)
    teacher = Teacher(cfg.aggregator, "cpu", **cfg.aggregator_args)
    teacher.check_dim(features_dim(slides[0]), str(slides[0].features_file),
                      "pass --features extracted with the stage-1 patch encoder")
    train, val = split_slides(slides, cfg.val_fraction, cfg.seed, cfg.val_slides)
    ordered = train + val
    labels = patch_labels(cfg.patch_labels, ordered)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    student, encoder = build_student(cfg.encoder, cfg.checkpoint, teacher.proj_state(), train_proj=cfg.train_proj,
                                     grad_checkpointing=cfg.grad_checkpointing)
    plan = RunPlan(ordered, len(train), teacher, sha256_file(cfg.aggregator), labels, encoder.preprocess,
                   cfg.run_dir)
    return plan, student, encoder


def self_train(cfg: SelfTrainConfig, overwrite: bool = False, progress: bool = True,
               callbacks: list | None = None) -> dict:
    """Run (or resume) stage 2 and write the run directory.

    Args:
        cfg: the resolved configuration.
        overwrite: delete an existing run directory first.
        progress: Lightning's progress bar and one line per validated epoch.
        callbacks: extra Lightning callbacks (tests use one to simulate an interruption).

    Returns:
        ``{"run", "encoder", "metrics", "meta"}`` (``{"run"}`` on ranks other than 0).

    Raises:
        MstarError: bad inputs (named), or an interrupted run (re-run to resume).
    """
    from mstar.selftrain.module import SelfTrainModule
    from mstar.selftrain.outputs import finished_result, write_outputs
    from mstar.selftrain.student import Student
    from mstar.utils.atomic import write_text_atomic

    cfg.validate()
    run = cfg.run_dir
    if run.exists() and overwrite:
        shutil.rmtree(run)
    if (run / "metrics.json").exists() and (run / "encoder").is_dir():
        return finished_result(run)
    start = time.perf_counter()
    plan, student, encoder = _prepare(cfg)
    name = cfg.name or f"{encoder.folder_name}-s2"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.yaml", cfg.to_yaml())
    module = SelfTrainModule(cfg, student, plan)
    module.progress = progress
    precision = resolve_precision(cfg)
    last = run / "checkpoints" / "last.ckpt"
    trainer = L.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
                        strategy=cfg.strategy, precision=precision, logger=False, enable_checkpointing=False,
                        callbacks=list(callbacks or []), use_distributed_sampler=False, limit_val_batches=0,
                        num_sanity_val_steps=0, enable_progress_bar=progress, enable_model_summary=False,
                        gradient_clip_val=cfg.grad_clip or None,
                        deterministic=True if not torch.cuda.is_available() else "warn")
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(module, ckpt_path=str(last) if last.exists() else None)
    if trainer.interrupted:
        raise MstarError(f"self-training interrupted; re-run the same command to resume from {last}")
    if not trainer.is_global_zero:
        return {"run": str(run)}
    exported = student.backbone if cfg.export == "student" else module.ema.model
    final = module.evaluator(Student(exported, student.proj), module.device, module.bf16, cfg.bootstrap)
    final_ci = final.pop("entries", {})
    change = change_entries(module.initial_arrays, final.pop("arrays", {}), cfg.bootstrap, cfg.seed)
    evaluator = module.evaluator
    n_train = plan.n_train
    meta = {"parent": cfg.encoder, "init_checkpoint": cfg.checkpoint, "aggregator": cfg.aggregator,
            "name": name, "export": cfg.export, "targets": cfg.targets, "ema_weight": cfg.ema_weight,
            "train_slides": n_train, "held_out_slides": len(plan.slides) - n_train,
            "held_out_ids": [s.slide_id for s in plan.slides[n_train:]],
            "val_patches": sum(len(it.patches) for it in evaluator.items if it.held_out),
            "probe_n_train": final.get("probe_n_train", 0), "probe_n_test": final.get("probe_n_test", 0),
            "probe_classes": final.get("probe_classes", []), "epochs": cfg.epochs,
            "global_step": int(trainer.global_step), "world_size": int(trainer.world_size),
            "batch_per_device": cfg.slides_per_step * cfg.patches_per_slide, "precision": precision,
            "grad_checkpointing": cfg.grad_checkpointing, "seconds": round(time.perf_counter() - start, 1)}
    return write_outputs(run, exported, student, encoder, name, module.history, module.initial_entries, final,
                         final_ci, change, meta)
