"""``mstar pretrain``: stage-1 multimodal pretraining of the slide aggregator, with a resumable run directory.

``runs/pretrain/<name>/``::

    config.yaml               resolved configuration
    checkpoints/last.ckpt     Lightning checkpoint after the latest finished epoch (resume point)
    checkpoints/stage1.pt     final model: {'model_state_dict' (upstream keys), 'config', 'meta'}
    log.csv                   per epoch: loss terms, held-out retrieval/separation, temperature, lr, seconds
    metrics.json              held-out figures of the final model with CIs and chance levels (written last)
    figures/                  training_curves.png, retrieval.png, {slide,report,gene}_embeddings.png

Re-running the command resumes from ``last.ckpt``; a finished run with the same settings and inputs is
reported, not retrained; other inputs stop with a message (``overwrite`` starts again). The run folder and
the harness are :mod:`mstar.run`'s.
"""

from __future__ import annotations

import logging
import time

import lightning as L

from mstar.data.feature_dirs import folder_identity, resolve_feature_dir
from mstar.errors import MstarError
from mstar.pretrain.stage1_config import Stage1Config
from mstar.run.folder import open_run
from mstar.run.harness import fit, one_process, resolve_precision

log = logging.getLogger(__name__)


# `precision: auto` trains stage 1 in bf16-mixed on a CPU with native bf16 only where it pays
# (benchmarks/stage1_cpu_bf16.py and BENCHMARKS.md, AVX512-BF16 CPU): at width 512 with TransMIL's default
# attention (8 heads x 64) a step is 1.6-1.8x faster whatever the bag size; at width 64, or width 512 with a
# narrow attention (4 x 16, whole runs), bf16 is slower. Accuracy held at widths 64 and 512 (2 seeds each).
CPU_BF16_MIN_DIM = 512
CPU_BF16_MIN_ATTENTION = 256  # heads x dim_head of the TransMIL aggregator


def cpu_bf16_pays(cfg: Stage1Config, width: int | None = None) -> bool:
    """Whether ``precision: auto`` may choose bf16-mixed on the CPU for this run: model width (``width``, the
    model's own when continuing one; else ``cfg.dim``) at least :data:`CPU_BF16_MIN_DIM`, the aggregator's
    attention (``heads`` x ``dim_head`` of ``vision_args``; defaults 8 x width/8) at least
    :data:`CPU_BF16_MIN_ATTENTION` wide, and one process (:func:`~mstar.run.harness.one_process`)."""
    width = int(width or cfg.dim)
    heads = int(cfg.vision_args.get("heads", 8))
    dim_head = int(cfg.vision_args.get("dim_head") or width // 8)
    return width >= CPU_BF16_MIN_DIM and heads * dim_head >= CPU_BF16_MIN_ATTENTION and one_process(cfg)


def build_model(cfg: Stage1Config, cohort):
    """A fresh :class:`Stage1Model` for ``cohort``; the gene encoder is fitted on the training profiles."""
    from mstar.models.gene_encoder import GeneEncoder, SNNGeneEncoder
    from mstar.pretrain.stage1_model import Stage1Model, build_text_encoder

    text = (build_text_encoder(cfg.text_encoder, cfg.dim, cfg.max_tokens, cfg.text_train_layers,
                               cfg.report_negation, cfg.text_pooling) if cfg.reports else None)
    gene = None
    if cohort.vocabulary is not None:
        if cfg.gene_encoder == "snn":
            gene = SNNGeneEncoder(cohort.vocabulary, proj_dim=cfg.dim, **cfg.gene_args)
        else:
            args = dict(cfg.gene_args)
            if cfg.gene2vec:
                from mstar.data.gene2vec import load_gene2vec

                vectors, _ = load_gene2vec(cfg.gene2vec, cohort.vocabulary)
                args.update(dim=int(vectors.shape[1]), gene_embeddings=vectors, freeze_gene_embeddings=True)
            gene = GeneEncoder(cohort.vocabulary, proj_dim=cfg.dim, **args)
        train = cohort.splits["train"]
        if not train.has_gene.any():
            raise MstarError(f"{cfg.rna}: no training slide has an RNA profile")
        gene.fit(train.gene_values[train.has_gene], train.gene_mask[train.has_gene])
    return Stage1Model(cohort.in_dim, cfg.dim, text, gene, cfg.vision_args, cfg.temperature)


def make_evaluator(cfg: Stage1Config, items, dataset, bf16: bool):
    """``evaluate(model, device) -> entries``: held-out retrieval, separation and loss of ``items``."""
    from mstar.pretrain.stage1_eval import embed_dataset, item_keys, retrieval_entries, separation_entries

    keys = item_keys(items)
    state: dict = {}

    def evaluate(model, device) -> dict:
        emb = embed_dataset(model, dataset, cfg.batch_size, device, bf16=bf16)
        state["emb"] = emb
        out = retrieval_entries(emb, keys, cfg.bootstrap, cfg.seed)
        for m in ("slide", "report", "gene"):  # how each modality's held-out embeddings separate the types
            rows = emb[f"has_{m}"]
            out.update(separation_entries(emb[m][rows], emb["labels"][rows], n_boot=cfg.bootstrap,
                                          seed=cfg.seed, prefix=m))
        return out

    evaluate.state = state
    return evaluate


def _load(cfg: Stage1Config, vocabulary: list[str] | None = None):
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_continue import add_replay, replay_rows, resolve_continuation, select_labels
    from mstar.pretrain.stage1_inputs import read_slide_table

    rows = read_slide_table(cfg.manifest, cfg.label_column, cfg.val_fraction, cfg.seed)
    rows = select_labels(rows, cfg.labels, cfg.manifest)
    if cfg.heldout == "val+test":
        rows["split"] = rows["split"].replace({"test": "val"})  # never trained on; scored for retrieval
    replayed = 0
    if cfg.replay_fraction > 0:
        replay = replay_rows(resolve_continuation(cfg.continue_from), cfg.replay_fraction, cfg.seed)
        rows, replayed = add_replay(rows, replay), int(replay["case"].nunique())
    cohort = build_cohort(rows, cfg.features or None, cfg.reports, cfg.rna, cfg.rna_layout,
                          vocabulary=vocabulary, cache_features=cfg.cache_features,
                          skip_missing=cfg.skip_missing, report_prep=cfg.report_prep,
                          max_tokens=cfg.max_tokens)
    if cfg.continue_from:
        cohort.counts["replayed_cases"] = replayed
    if len(cohort.splits["train"]) < 2:
        raise MstarError(f"{cfg.manifest}: {len(cohort.splits['train'])} training slide(s); "
                         "at least 2 are needed")
    return cohort


def trained_cases(cfg: Stage1Config, cohort) -> tuple[list[str], bool]:
    """``(cases, complete)``: every case the model has been trained on — this run's training split and, when
    continuing, the earlier model's — and whether that list is complete (False when the earlier checkpoint
    does not record its cases). Stages that use the model's embeddings to evaluate on other cases (the
    report consensus) check against it."""
    cases, complete = set(cohort.splits["train"].cases), True
    if cfg.continue_from:
        from mstar.models.upstream import read_checkpoint
        from mstar.pretrain.stage1_continue import resolve_continuation

        earlier = read_checkpoint(resolve_continuation(cfg.continue_from).checkpoint).get("meta", {})
        cases |= set(earlier.get("train_cases") or [])
        complete = earlier.get("train_cases") is not None and earlier.get("train_cases_complete", True)
    return sorted(cases), complete


def _continued_model(cfg: Stage1Config):
    """The earlier run's model when ``continue_from`` is set (its architecture overrides this config's)."""
    if not cfg.continue_from:
        return None
    from mstar.pretrain.stage1_continue import resolve_continuation
    from mstar.pretrain.stage1_model import load_stage1

    model, _ = load_stage1(resolve_continuation(cfg.continue_from).checkpoint, cfg.text_encoder)
    if (model.in_dim is None) != (not cfg.features):
        raise MstarError(f"{cfg.continue_from}: the earlier model was trained "
                         f"{'without' if model.in_dim is None else 'with'} slide features; "
                         "continue with the same inputs")
    log.warning("continuing %s: architecture, text and gene encoders come from that checkpoint "
                "(dim, gene_encoder, gene_args, vision_args, text settings of this config are not used)",
                cfg.continue_from)
    return model


def pretrain(cfg: Stage1Config, overwrite: bool = False, progress: bool = True,
             callbacks: list | None = None) -> dict:
    """Run (or resume) stage-1 pretraining and write the run directory.

    Args:
        cfg: The resolved configuration.
        overwrite: Replace an existing run directory.
        progress: Show Lightning's progress bar (loss terms) and a line per epoch.
        callbacks: Extra Lightning callbacks (tests use one to simulate an interruption).

    Returns:
        ``{"run", "checkpoint", "metrics", "meta"}`` (``finished_before`` when the run was already finished).
    """
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_module import Stage1Module
    from mstar.pretrain.stage1_outputs import finished_result, write_outputs

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        return {**finished_result(folder.path), "finished_before": True}
    start = time.perf_counter()
    earlier = _continued_model(cfg)
    cohort = _load(cfg, earlier.gene_encoder.vocabulary if earlier is not None and earlier.gene_encoder
                   is not None else None)
    resume = folder.resumable
    run = folder.start(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg, cohort) if earlier is None else earlier.train()
    model.load_text_cache(cfg.text_cache)
    train_ds = Stage1Dataset(cohort.bags, cohort.splits["train"], cfg.max_patches, train=True, seed=cfg.seed)
    val_items = cohort.splits["val"]
    cpu_bf16 = cpu_bf16_pays(cfg, getattr(model, "dim", None))
    bf16 = resolve_precision(cfg.precision, cfg.accelerator, cpu_bf16).startswith("bf16")
    evaluate = None
    if len(val_items) >= 2:
        evaluate = make_evaluator(cfg, val_items, Stage1Dataset(cohort.bags, val_items), bf16)
    else:
        log.warning("fewer than 2 held-out slides: no validation retrieval")
    module = Stage1Module(model, cfg, train_ds, evaluate, verbose=progress)
    last = run / "checkpoints" / "last.ckpt"
    if not resume:
        last.unlink(missing_ok=True)
    # the encoder and tiling of the patch features (read now: the folder may gain others while it trains)
    features_id = folder_identity(resolve_feature_dir(cfg.features)) if cfg.features else {}
    result = fit(module, cfg, run, resume_from=last, callbacks=list(callbacks or []), grad_clip=cfg.grad_clip,
                 progress=progress, distributed_sampler=False, cpu_bf16=cpu_bf16)
    trainer = result.trainer
    if not trainer.is_global_zero:
        return {"run": str(run)}
    model.save_text_cache(cfg.text_cache)
    final = module.last_eval  # the last epoch always evaluates; empty when fit had nothing left to do
    if evaluate is not None and not final:
        final = evaluate(model, module.device)
    emb = evaluate.state.get("emb") if evaluate is not None else None
    meta = {"classes": cohort.classes, "counts": cohort.counts, "dropped_slides": cohort.dropped,
            "epochs": cfg.epochs, "global_step": int(trainer.global_step), "precision": result.precision,
            "world_size": int(trainer.world_size), "seconds": round(time.perf_counter() - start, 1),
            "vocabulary_size": len(cohort.vocabulary or []), "in_dim": cohort.in_dim,
            "features": features_id,
            **dict(zip(("train_cases", "train_cases_complete"), trained_cases(cfg, cohort)))}
    out = write_outputs(run, model, module.history, final, emb, val_items, cohort.classes, meta)
    folder.finish()
    return out

