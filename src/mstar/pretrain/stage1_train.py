"""``mstar pretrain``: stage-1 multimodal pretraining of the slide aggregator, with a resumable run directory.

``runs/pretrain/<name>/``::

    config.yaml               resolved configuration
    checkpoints/last.ckpt     Lightning checkpoint after the latest finished epoch (resume point)
    checkpoints/stage1.pt     final model: {'model_state_dict' (upstream keys), 'config', 'meta'}
    log.csv                   per epoch: loss terms, held-out retrieval/separation, temperature, lr, seconds
    metrics.json              held-out figures of the final model with CIs and chance levels (written last)
    figures/                  training_curves.png, retrieval.png, slide_embeddings.png

Re-running the command resumes from ``last.ckpt``; a finished run (``metrics.json`` present) is not
retrained; ``overwrite`` starts again.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from mstar.errors import MstarError
from mstar.pretrain.stage1_config import Stage1Config

log = logging.getLogger(__name__)
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen text encoder


class EpochCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` atomically at the end of every training epoch.

    A :class:`~lightning.pytorch.callbacks.Checkpoint` subclass, so Lightning runs it *after* the module's
    ``on_train_epoch_end`` (held-out retrieval and the epoch's ``history`` row are inside the file).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tmp = self.path.with_name(f".{self.path.name}.part")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier()


def _precision(cfg: Stage1Config) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16-mixed" if torch.cuda.is_available() and cfg.accelerator != "cpu" else "32-true"


def build_model(cfg: Stage1Config, cohort):
    """A fresh :class:`Stage1Model` for ``cohort``; the gene encoder is fitted on the training profiles."""
    from mstar.models.gene_encoder import GeneEncoder, SNNGeneEncoder
    from mstar.pretrain.stage1_model import Stage1Model, build_text_encoder

    text = build_text_encoder(cfg.text_encoder, cfg.dim, cfg.max_tokens, cfg.text_train_layers) if cfg.reports else None
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
    from mstar.pretrain.stage1_eval import embed_dataset, retrieval_entries, separation_entries

    keys = {"slide": items.slides, "report": items.report_keys,
            "gene": [c if h else None for c, h in zip(items.cases, items.has_gene)]}
    state: dict = {}

    def evaluate(model, device) -> dict:
        emb = embed_dataset(model, dataset, cfg.batch_size, device, bf16=bf16)
        state["emb"] = emb
        out = retrieval_entries(emb, keys, cfg.bootstrap, cfg.seed)
        out.update(separation_entries(emb["slide"], emb["labels"], n_boot=cfg.bootstrap, seed=cfg.seed))
        return out

    evaluate.state = state
    return evaluate


def _load(cfg: Stage1Config):
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_inputs import read_slide_table

    rows = read_slide_table(cfg.manifest, cfg.label_column, cfg.val_fraction, cfg.seed)
    if cfg.heldout == "val+test":
        rows["split"] = rows["split"].replace({"test": "val"})  # never trained on; scored for retrieval
    cohort = build_cohort(rows, cfg.features, cfg.reports, cfg.rna, cfg.rna_layout,
                          cache_features=cfg.cache_features, skip_missing=cfg.skip_missing)
    if len(cohort.splits["train"]) < 2:
        raise MstarError(f"{cfg.manifest}: {len(cohort.splits['train'])} training slide(s); at least 2 are needed")
    return cohort


def pretrain(cfg: Stage1Config, overwrite: bool = False, progress: bool = True,
             callbacks: list | None = None) -> dict:
    """Run (or resume) stage-1 pretraining and write the run directory.

    Args:
        cfg: The resolved configuration.
        overwrite: Delete an existing run directory first.
        progress: Show Lightning's progress bar (loss terms) and a line per epoch.
        callbacks: Extra Lightning callbacks (tests use one to simulate an interruption).

    Returns:
        ``{"run", "checkpoint", "metrics", "meta"}``.
    """
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_module import Stage1Module
    from mstar.pretrain.stage1_outputs import finished_result, write_outputs
    from mstar.utils.atomic import write_text_atomic

    cfg.validate()
    run = cfg.run_dir()
    launched_rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    if run.exists() and overwrite and launched_rank == 0:  # DDP children re-run this; only rank 0 deletes
        shutil.rmtree(run)
    if (run / "metrics.json").exists() and (run / "checkpoints" / "stage1.pt").exists():
        return finished_result(run)
    start = time.perf_counter()
    cohort = _load(cfg)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.yaml", cfg.to_yaml())
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg, cohort)
    train_ds = Stage1Dataset(cohort.bags, cohort.splits["train"], cfg.max_patches, train=True, seed=cfg.seed)
    val_items = cohort.splits["val"]
    precision = _precision(cfg)
    evaluate = None
    if len(val_items) >= 2:
        evaluate = make_evaluator(cfg, val_items, Stage1Dataset(cohort.bags, val_items), precision.startswith("bf16"))
    else:
        log.warning("fewer than 2 held-out slides: no validation retrieval")
    module = Stage1Module(model, cfg, train_ds, evaluate, verbose=progress)
    last = run / "checkpoints" / "last.ckpt"
    trainer = L.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
                        precision=precision, logger=False, enable_checkpointing=True,
                        callbacks=[EpochCheckpoint(last), *(callbacks or [])], use_distributed_sampler=False,
                        limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=progress,
                        enable_model_summary=False, gradient_clip_val=cfg.grad_clip or None,
                        deterministic=True if not torch.cuda.is_available() else "warn")
    trainer.fit(module, ckpt_path=str(last) if last.exists() else None)
    if trainer.interrupted:
        raise MstarError(f"pretraining interrupted; re-run the same command to resume from {last}")
    if not trainer.is_global_zero:
        return {"run": str(run)}
    final = module.last_eval  # the last epoch always evaluates; empty when fit had nothing left to do
    if evaluate is not None and not final:
        final = evaluate(model, module.device)
    emb = evaluate.state.get("emb") if evaluate is not None else None
    meta = {"classes": cohort.classes, "counts": cohort.counts, "dropped_slides": cohort.dropped,
            "epochs": cfg.epochs, "global_step": int(trainer.global_step), "precision": precision,
            "world_size": int(trainer.world_size), "seconds": round(time.perf_counter() - start, 1),
            "vocabulary_size": len(cohort.vocabulary or []), "in_dim": cohort.in_dim}
    return write_outputs(run, model, module.history, final, emb, val_items, cohort.classes, meta)

