"""``mstar embed``: slide, report and gene embeddings of any cohort from a stage-1 checkpoint, in one h5 file.

Output (``--out``, one row per slide, rows in manifest order)::

    slide_id, case_id, label       (S,) strings (label "" when the manifest has none)
    slide                          (S, E) float32, CLS of proj → TransMIL over *all* patches
    report, gene                   (S, E) float32, NaN where the slide has no report / RNA profile
    has_report, has_gene           (S,) bool
    report_key                     (S,) string: the id the report was found under ("" if none)
    attrs: checkpoint, dim, in_dim, normalised=False, genes (the checkpoint's vocabulary size; 0: no RNA)

Embeddings are the raw projections (what the losses L2-normalise); normalise them for cosine similarity.
Reports are looked up by slide id, then case id; RNA profiles by case id, then slide id. RNA genes outside
the checkpoint's vocabulary are ignored with a warning; vocabulary genes absent from the table are masked.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError

log = logging.getLogger(__name__)


def _slide_rows(manifest: str | None, features: str) -> pd.DataFrame:
    """``slide, case, label, split='all'`` from a manifest, or one row per feature file of the folder."""
    from mstar.data.feature_dirs import FEATURE_SUFFIXES, resolve_feature_dir
    from mstar.pretrain.stage1_inputs import read_slide_table

    if manifest:
        rows = read_slide_table(manifest, require_label=False)
    else:
        folder = resolve_feature_dir(features)
        slides = sorted({p.stem for p in folder.iterdir() if p.suffix in FEATURE_SUFFIXES and p.is_file()})
        rows = pd.DataFrame({"slide": slides, "case": slides, "label": ""})
    rows = rows.copy()
    rows["split"] = "all"
    return rows


@torch.no_grad()
def _encode(fn, inputs: list, batch_size: int) -> np.ndarray:
    out = [fn(inputs[i:i + batch_size]).float().cpu().numpy() for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_cohort(checkpoint: str | os.PathLike, features: str | os.PathLike, out: str | os.PathLike,
                 manifest: str | os.PathLike | None = None, reports: str | os.PathLike | None = None,
                 rna: str | os.PathLike | None = None, rna_layout: str = "auto",
                 text_encoder: str | os.PathLike | None = None, batch_size: int = 8, device: str = "auto",
                 skip_missing: bool = False) -> dict:
    """Embed every slide of a cohort (and its report and RNA profile) with a stage-1 model.

    Args:
        checkpoint: ``stage1.pt`` written by ``mstar pretrain``.
        features: Patch features of the cohort (same encoder as in pretraining).
        out: The h5 file to write (atomically).
        manifest: Slides with their case (any manifest schema); None: every feature file is a slide.
        reports: Reports JSON (optional; needs a checkpoint with a report encoder).
        rna: RNA table or per-case folder (optional; needs a checkpoint with a gene encoder).
        rna_layout: See :func:`mstar.data.rna.read_rna_table`.
        text_encoder: The text model's folder, when it moved since pretraining.
        batch_size: Slides (or texts, profiles) per forward pass.
        device: ``auto`` (GPU when available), ``cpu`` or ``cuda``.
        skip_missing: Drop slides without feature files instead of failing.

    Returns:
        ``{"out", "slides", "reports", "genes", "dim"}`` (counts of embedded items).
    """
    import h5py

    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset, collate_stage1
    from mstar.pretrain.stage1_model import load_stage1
    from mstar.utils.atomic import atomic_path

    model, meta = load_stage1(checkpoint, text_encoder)
    if reports and model.text is None:
        raise MstarError(f"{checkpoint}: this model has no report encoder (pretrained without --reports); "
                         "drop --reports")
    if rna and model.gene_encoder is None:
        raise MstarError(f"{checkpoint}: this model has no gene encoder (pretrained without --rna); drop --rna")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model.to(dev)
    rows = _slide_rows(str(manifest) if manifest else None, str(features))
    vocabulary = model.gene_encoder.vocabulary if model.gene_encoder is not None else None
    cohort = build_cohort(rows, str(features), str(reports) if reports else None, str(rna) if rna else None,
                          rna_layout, vocabulary=vocabulary if rna else None, classes=meta.get("classes"),
                          skip_missing=skip_missing, splits=("all",))
    if cohort.in_dim != model.in_dim:
        raise MstarError(f"{features}: {cohort.in_dim}-d patch features, but the checkpoint was pretrained on "
                         f"{model.in_dim}-d ones; use features of the same patch encoder")
    items = cohort.splits["all"]
    n, dim = len(items), model.dim
    data = Stage1Dataset(cohort.bags, items)

    def slides(idx: list[int]) -> torch.Tensor:
        batch = collate_stage1([data[i] for i in idx])
        return model.encode_slide(batch["x"].to(dev), batch["mask"].to(dev))  # (b, dim)

    z_slide = _encode(slides, list(range(n)), batch_size)  # (S, dim)
    z_report = np.full((n, dim), np.nan, np.float32)
    has_report = np.array([t is not None for t in items.texts])
    if has_report.any():
        z_report[has_report] = _encode(model.encode_text, [t for t in items.texts if t is not None], batch_size)
    z_gene = np.full((n, dim), np.nan, np.float32)
    has_gene = items.has_gene.astype(bool)
    if has_gene.any():
        values = torch.from_numpy(items.gene_values[has_gene])
        mask = torch.from_numpy(items.gene_mask[has_gene])
        pairs = list(zip(values, mask))
        z_gene[has_gene] = _encode(lambda b: model.encode_gene(torch.stack([v for v, _ in b]).to(dev),
                                                               torch.stack([m for _, m in b]).to(dev)),
                                   pairs, batch_size)
    label_of = dict(zip(rows["slide"], rows["label"].astype(str)))
    labels = [label_of.get(s, "") for s in items.slides]
    text = h5py.string_dtype()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("slide_id", data=np.array(items.slides, dtype=object), dtype=text)
        f.create_dataset("case_id", data=np.array(items.cases, dtype=object), dtype=text)
        f.create_dataset("label", data=np.array(labels, dtype=object), dtype=text)
        f.create_dataset("report_key", data=np.array([k or "" for k in items.report_keys], dtype=object), dtype=text)
        for name, value in (("slide", z_slide), ("report", z_report), ("gene", z_gene)):
            f.create_dataset(name, data=value.astype(np.float32))
        f.create_dataset("has_report", data=has_report)
        f.create_dataset("has_gene", data=has_gene)
        f.attrs.update({"checkpoint": str(checkpoint), "dim": dim, "in_dim": model.in_dim, "normalised": False,
                        "genes": cohort.counts.get("genes", 0)})
    summary = {"out": str(out), "slides": n, "reports": int(has_report.sum()), "genes": int(has_gene.sum()),
               "dim": dim}
    log.info("embedded %(slides)d slides, %(reports)d reports, %(genes)d RNA profiles -> %(out)s", summary)
    return summary
