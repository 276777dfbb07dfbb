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

import os
import time
from pathlib import Path

import numpy as np

from mstar.errors import MstarError

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


def retrieve(checkpoint, manifest: str | os.PathLike, features: str | os.PathLike,
             reports: str | os.PathLike | None = None, rna: str | os.PathLike | None = None,
             rna_layout: str = "auto", split: str = "test", label_column: str = "auto",
             out: str | os.PathLike = "runs", name: str | None = None, bootstrap: int = 1000, seed: int = 0,
             batch_size: int = 8, device: str = "auto", text_encoder: str | os.PathLike | None = None,
             skip_missing: bool = False) -> dict:
    """Embed the slides (and their reports / RNA) of one split and score every retrieval direction.

    Args:
        checkpoint: Stage-1 checkpoint (or a ``Stage1Model``).
        manifest: Slides with case, label and split.
        features: Patch features.
        reports: Reports JSON (``{slide_or_case: text}``) or None.
        rna: RNA table/folder or None; genes are matched to the model's vocabulary.
        rna_layout: Layout of the RNA table (see ``mstar.data.rna.read_rna_table``).
        split: ``test`` (default), ``val``, ``train`` or ``all``.
        label_column: Cancer-type column for slide→slide.
        out: Runs folder; the run is ``<out>/retrieval/<name>``.
        name: Run name (default ``<manifest stem>-<split>``).
        bootstrap, seed: Bootstrap settings of the CIs.
        batch_size: Slides per forward pass.
        device, text_encoder, skip_missing: As in zero-shot.

    Returns:
        ``{"run", "metrics" ({split: entries}), "n_slides"}``.
    """
    from mstar.eval.results import metrics_table, write_metrics_json
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_eval import embed_dataset, retrieval_entries
    from mstar.pretrain.stage1_inputs import read_slide_table
    from mstar.pretrain.stage1_outputs import plot_retrieval
    from mstar.utils.atomic import atomic_path
    from mstar.zeroshot.loading import load_model

    start = time.perf_counter()
    if not reports and not rna:
        raise MstarError("retrieval needs --reports and/or --rna (slide→slide alone is `mstar few-shot`'s SimpleShot)")
    rows = read_slide_table(manifest, label_column, require_label=True)
    if split == "all":
        rows = rows.assign(split="all")
    elif split not in set(rows["split"]):
        raise MstarError(f"{manifest}: no rows in split {split!r} (has {sorted(set(rows['split']))}); use --split")
    model, _ = load_model(checkpoint, text_encoder, device)
    if reports and model.text is None:
        raise MstarError(f"{checkpoint}: the model has no report encoder; drop --reports")
    vocabulary = None
    if rna:
        if model.gene_encoder is None:
            raise MstarError(f"{checkpoint}: the model has no gene encoder (trained without --rna); drop --rna")
        vocabulary = model.gene_encoder.vocabulary
    cohort = build_cohort(rows, str(features), str(reports) if reports else None, str(rna) if rna else None,
                          rna_layout, vocabulary=vocabulary, skip_missing=skip_missing, splits=(split,))
    items = cohort.splits[split]
    if len(items) < 2:
        raise MstarError(f"{manifest}: {len(items)} slide(s) in split {split!r}; retrieval needs at least 2")
    device_ = next(model.parameters()).device
    emb = embed_dataset(model, Stage1Dataset(cohort.bags, items), batch_size, device_)
    keys = {"slide": items.slides, "report": items.report_keys if reports else [None] * len(items),
            "gene": [c if h else None for c, h in zip(items.cases, items.has_gene)]}
    entries = retrieval_entries(emb, keys, bootstrap, seed, ks=KS)
    entries.update(slide_to_slide_entries(emb["slide"], emb["labels"], bootstrap, seed))
    if not entries:
        raise MstarError(f"split {split!r}: no direction has two or more matched pairs (check report/RNA ids)")

    run = Path(out) / "retrieval" / (name or f"{Path(manifest).stem}-{split}")
    (run / "figures").mkdir(parents=True, exist_ok=True)
    metrics = {split: entries}
    table = metrics_table(metrics)
    table["chance"] = [entries[m].get("chance", np.nan) for m in table["metric"]]
    with atomic_path(run / "retrieval.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_retrieval(entries, run / "figures" / "retrieval.png", ks=KS)
    meta = {"task": "retrieval", "manifest": str(manifest), "split": split, "n_slides": len(items),
            "counts": {k: v for k, v in cohort.counts.items()}, "classes": cohort.classes, "bootstrap": bootstrap,
            "seed": seed, "dropped_slides": cohort.dropped, "seconds": round(time.perf_counter() - start, 1),
            "note": "chance = expected value under a uniformly random ranking of the same gallery"}
    write_metrics_json(run / "metrics.json", metrics, meta=meta)
    return {"run": str(run), "metrics": metrics, "n_slides": len(items)}
