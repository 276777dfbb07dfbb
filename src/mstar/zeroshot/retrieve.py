"""``mstar retrieve``: cross-modal and slide-to-slide retrieval with a stage-1 model on one split.

Directions (cosine similarity, Recall@1/5/10/50 and mAP with bootstrap CIs over queries, plus the
expected value under random ranking as ``chance``):

- ``slide_to_report``, ``report_to_slide``: the slide's own report is the relevant item (reports found
  under a case id count once per case); needs ``--reports``.
- ``slide_to_gene``, ``gene_to_slide`` (and report↔gene): the case's RNA profile; needs ``--rna`` and a
  model trained with RNA.
- ``slide_to_slide``: every other slide of the same label (cancer type) is relevant; the query itself is
  left out of its gallery.

The cross-modal part is :func:`mstar.pretrain.stage1_eval.retrieval_entries`, the figure
:func:`mstar.pretrain.stage1_outputs.plot_retrieval`: the same computation as pretraining's validation.
Output ``runs/retrieval/<name>/``: ``metrics.json``, ``retrieval.csv`` (one row per metric) and
``figures/retrieval.png``.
"""

from __future__ import annotations

import time

import numpy as np

from mstar.errors import MstarError
from mstar.run.folder import open_run
from mstar.zeroshot.config import RetrievalConfig

KS = (1, 5, 10, 50)


def slide_to_slide_entries(slide_emb: np.ndarray, labels: np.ndarray, n_boot: int = 1000, seed: int = 0,
                           ks=KS) -> dict[str, dict]:
    """``slide_to_slide/recall@K`` and ``/map``: same-label slides relevant, self excluded."""
    from mstar.eval.retrieval import chance_levels, relevance_from_labels, retrieval_metrics_ci

    if len(labels) < 2:
        return {}
    z = slide_emb / np.maximum(np.linalg.norm(slide_emb, axis=1, keepdims=True), 1e-12)
    rel = relevance_from_labels(labels, labels)
    metrics = retrieval_metrics_ci(z @ z.T, rel, ks=ks, exclude_self=True, n_resamples=n_boot, seed=seed)
    chance = chance_levels(rel, ks=ks, exclude_self=True)
    return {f"slide_to_slide/{k}": {**v, "chance": chance[k]} for k, v in metrics.items()}


def retrieve(cfg: RetrievalConfig, model=None, overwrite: bool = False) -> dict:
    """Embed the slides (and their reports / RNA) of one split and score every retrieval direction.

    Args:
        cfg: The settings (``split``: test by default; reports and RNA are matched by slide or case id, genes
            to the model's vocabulary).
        model: An already loaded ``Stage1Model`` to use instead of loading ``cfg.stage1``.
        overwrite: Replace an existing run folder.

    Returns:
        ``{"run", "metrics" ({split: entries}), "n_slides"}``.
    """
    from mstar.eval.results import metrics_table, read_metrics_json, read_metrics_meta, write_metrics_json
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_eval import embed_dataset, item_keys, retrieval_entries
    from mstar.pretrain.stage1_inputs import read_slide_table
    from mstar.pretrain.stage1_outputs import plot_retrieval
    from mstar.utils.atomic import atomic_path
    from mstar.zeroshot.loading import check_unseen, load_model

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        return {"run": str(folder.path), "metrics": read_metrics_json(folder.path / "metrics.json"),
                "n_slides": read_metrics_meta(folder.path / "metrics.json")["n_slides"],
                "finished_before": True}
    start = time.perf_counter()
    manifest, split, reports, rna, checkpoint = cfg.manifest, cfg.split, cfg.reports, cfg.rna, cfg.stage1
    rows = read_slide_table(manifest, cfg.label_column, require_label=True)
    if split == "all":
        rows = rows.assign(split="all")
    elif split not in set(rows["split"]):
        raise MstarError(f"{manifest}: no rows in split {split!r} (has {sorted(set(rows['split']))}); "
                         "use --split")
    model, loaded = load_model(model if model is not None else checkpoint, cfg.text_encoder, cfg.device,
                               cfg.text_cache, cfg.features or None)
    scored = rows if split == "all" else rows[rows["split"] == split]
    slides_of = scored.groupby("case", sort=False)["slide"].agg(list).to_dict()
    seen = check_unseen(loaded, slides_of, cfg.seen_cases, checkpoint, f"{split} cases")
    if reports and model.text is None:
        raise MstarError(f"{checkpoint}: the model has no report encoder; drop --reports")
    vocabulary = None
    if rna:
        if model.gene_encoder is None:
            raise MstarError(f"{checkpoint}: the model has no gene encoder (trained without --rna); "
                             "drop --rna")
        vocabulary = model.gene_encoder.vocabulary
    cohort = build_cohort(rows, str(cfg.features) if cfg.features else None,
                          str(reports) if reports else None, str(rna) if rna else None, cfg.rna_layout,
                          vocabulary=vocabulary, skip_missing=cfg.skip_missing, splits=(split,),
                          report_prep=cfg.report_prep,
                          max_tokens=model.text.max_tokens if model.text is not None else None)
    cohort.check_width(cfg.features, model.in_dim)
    items = cohort.splits[split]
    if len(items) < 2:
        raise MstarError(f"{manifest}: {len(items)} slide(s) in split {split!r}; retrieval needs at least 2")
    device_ = next(model.parameters()).device
    emb = embed_dataset(model, Stage1Dataset(cohort.bags, items), cfg.batch_size, device_)
    model.save_text_cache(cfg.text_cache)
    keys = {**item_keys(items), **({} if reports else {"report": [None] * len(items)})}
    entries = retrieval_entries(emb, keys, cfg.bootstrap, cfg.seed, ks=KS, within=cfg.within_label)
    if emb["has_slide"].any():
        slides = emb["has_slide"]
        entries.update(slide_to_slide_entries(emb["slide"][slides], emb["labels"][slides], cfg.bootstrap,
                                              cfg.seed))
    if not entries:
        raise MstarError(f"split {split!r}: no direction has two or more matched pairs "
                         "(check report/RNA ids)")

    run = folder.start(cfg)
    (run / "figures").mkdir(parents=True, exist_ok=True)
    metrics = {split: entries}
    table = metrics_table(metrics)
    table["chance"] = [entries[m].get("chance", np.nan) for m in table["metric"]]
    with atomic_path(run / "retrieval.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_retrieval(entries, run / "figures" / "retrieval.png", ks=KS)
    meta = {"task": "retrieval", "manifest": str(manifest), "split": split, "n_slides": len(items),
            "counts": {k: v for k, v in cohort.counts.items()}, "classes": cohort.classes,
            "bootstrap": cfg.bootstrap, "seed": cfg.seed, "dropped_slides": cohort.dropped,
            "stage1_seen_cases": seen,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "chance = expected value under a uniformly random ranking of the same gallery"}
    write_metrics_json(run / "metrics.json", metrics, meta=meta)
    folder.finish()
    return {"run": str(run), "metrics": metrics, "n_slides": len(items)}
