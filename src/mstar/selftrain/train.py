"""``mstar self-train``: stage 2, self-taught training of the patch encoder, in a resumable run directory.

``<out>/selftrain/<name>/`` (config.yaml and run.json from :mod:`mstar.run`)::

    config.yaml                 resolved configuration
    targets/<slide>.npy|.json   teacher targets from the stored features (float16, cached, reused on resume)
    checkpoints/last.ckpt       Lightning checkpoint after the latest finished epoch (the resume point)
    encoder/<name>.pth + .json  the new patch encoder: plain timm state_dict + mstar.encoder/1 sidecar
    encoder/proj.pt             the student's projection, stage-1 layout
    log.csv                     per epoch (0 = before training): loss terms, held-out cosine, probes, lr,
                                momentum
    figures/validation_curves.png
    metrics.json                initial vs final held-out metrics with CIs (written last: marks the run
                                finished)

Re-running the command resumes from ``last.ckpt``; a finished run with the same settings and inputs is
reported, not retrained; other inputs stop with a message; ``overwrite`` restarts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L

from mstar.run.folder import open_run
from mstar.run.harness import fit
from mstar.selftrain.config import SelfTrainConfig

log = logging.getLogger(__name__)


def change_entries(initial: dict, final: dict, n_boot: int, seed: int) -> dict:
    """Final minus initial on the same held-out patches, with paired bootstrap CIs."""
    import numpy as np

    from mstar.eval.bootstrap import bootstrap_ci_weighted, weighted_mean_stats
    from mstar.eval.probes import paired_change_ci

    out: dict = {}
    if not n_boot or not initial or not final:
        return out
    before, after = np.asarray(initial.get("cosine", [])), np.asarray(final.get("cosine", []))
    if before.size and before.shape == after.shape:
        out["cosine"] = bootstrap_ci_weighted(weighted_mean_stats({"d": after - before}), before.size, n_boot,
                                              seed)["d"]
    y = np.asarray(initial.get("labels", []), dtype=str)
    for name in ("knn", "linear"):
        if name in initial and name in final and len(y):
            out[f"{name}_balanced_accuracy"] = paired_change_ci(y, np.asarray(initial[name], dtype=str),
                                                                np.asarray(final[name], dtype=str), n_boot,
                                                                seed)
    return out


def _prepare(cfg: SelfTrainConfig, run: Path):
    """Slides, split, teacher, labels, student: everything checked before any training starts."""
    from mstar.features.checkpoints import sha256_file
    from mstar.selftrain.cohort import features_dim, load_slides, split_slides
    from mstar.selftrain.labels import patch_labels
    from mstar.selftrain.module import RunPlan
    from mstar.selftrain.student import build_student
    from mstar.selftrain.teacher import Teacher

    slides = load_slides(cfg.tiles, cfg.features, cfg.slides)
    teacher = Teacher(cfg.stage1, "cpu", **cfg.aggregator_args)
    teacher.check_dim(features_dim(slides[0]), str(slides[0].features_file),
                      "pass --features extracted with the stage-1 patch encoder")
    train, val = split_slides(slides, cfg.val_fraction, cfg.seed, cfg.val_slides)
    ordered = train + val
    labels = patch_labels(cfg.patch_labels, ordered)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    student, encoder = build_student(cfg.encoder, cfg.checkpoint, teacher.proj_state(),
                                     train_proj=cfg.train_proj, grad_checkpointing=cfg.grad_checkpointing)
    plan = RunPlan(ordered, len(train), teacher, sha256_file(cfg.stage1), labels, encoder.preprocess, run)
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

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        return {**finished_result(folder.path), "finished_before": True}
    start = time.perf_counter()
    resume = folder.resumable
    plan, student, encoder = _prepare(cfg, folder.path)
    run = folder.start(cfg)
    name = cfg.output_name()
    module = SelfTrainModule(cfg, student, plan, progress=progress)
    last = run / "checkpoints" / "last.ckpt"
    if not resume:
        last.unlink(missing_ok=True)
    result = fit(module, cfg, run, resume_from=last, callbacks=list(callbacks or []), grad_clip=cfg.grad_clip,
                 progress=progress, distributed_sampler=False)
    trainer, precision = result.trainer, result.precision
    if not trainer.is_global_zero:
        return {"run": str(run)}
    exported = student.backbone if cfg.export == "student" else module.ema.model
    final = module.evaluator(Student(exported, student.proj), module.device, module.bf16, cfg.bootstrap)
    final_ci = final.pop("entries", {})
    change = change_entries(module.initial_arrays, final.pop("arrays", {}), cfg.bootstrap, cfg.seed)
    evaluator = module.evaluator
    n_train = plan.n_train
    meta = {"parent": cfg.encoder, "init_checkpoint": cfg.checkpoint, "stage1": cfg.stage1,
            "name": name, "export": cfg.export, "targets": cfg.targets, "ema_weight": cfg.ema_weight,
            "train_slides": n_train, "held_out_slides": len(plan.slides) - n_train,
            "held_out_ids": [s.slide_id for s in plan.slides[n_train:]],
            "val_patches": sum(len(it.patches) for it in evaluator.items if it.held_out),
            "probe_n_train": final.get("probe_n_train", 0), "probe_n_test": final.get("probe_n_test", 0),
            "probe_classes": final.get("probe_classes", []), "epochs": cfg.epochs,
            "global_step": int(trainer.global_step), "world_size": int(trainer.world_size),
            "batch_per_device": cfg.slides_per_step * cfg.patches_per_slide, "precision": precision,
            "grad_checkpointing": cfg.grad_checkpointing, "seconds": round(time.perf_counter() - start, 1)}
    out = write_outputs(run, exported, student, encoder, name, module.history, module.initial_entries, final,
                        final_ci, change, meta)
    folder.finish()
    return out
