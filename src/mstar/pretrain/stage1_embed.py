"""``mstar embed``: slide, report and gene embeddings of any cohort from a stage-1 checkpoint, in one h5 file.

Output: ``<out>/embed/<name>/embeddings.h5`` beside ``config.yaml`` and ``run.json`` (with ``out_h5`` the h5
goes to that file and the run folder records it); one row per slide, rows in manifest order::

    slide_id, case_id, label       (S,) strings (label "" when the manifest has none)
    slide                          (S, E) float32, CLS of proj → TransMIL over *all* patches
    report, gene                   (S, E) float32, NaN where the slide has no report / RNA profile
    has_report, has_gene           (S,) bool
    report_key                     (S,) string: the id the report was found under ("" if none)
    has_slide                      (S,) bool
    attrs: checkpoint, checkpoint_digest (content digest of the checkpoint), dim, in_dim, normalised=False,
           genes (the checkpoint's vocabulary size; 0: no RNA), train_cases (JSON list of the cases the model
           was trained on, when its checkpoint records them), train_cases_complete (False: a continued
           model whose earlier cases are unknown), reports_digest (content digest of the reports file)

Embeddings are the raw projections (what the losses L2-normalise); normalise them for cosine similarity.
Reports are looked up by slide id, then case id; RNA profiles by case id, then slide id. RNA genes outside
the checkpoint's vocabulary are ignored with a warning; vocabulary genes absent from the table are masked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from mstar.data.feature_dirs import check_stage1_features
from mstar.errors import MstarError
from mstar.features.distributed import resolve_device
from mstar.run.config import RunConfig
from mstar.run.fingerprint import content_digest, file_digest
from mstar.run.folder import open_run

log = logging.getLogger(__name__)
H5_NAME = "embeddings.h5"


@dataclass
class EmbedConfig(RunConfig):
    """Settings of ``mstar embed``."""

    stage1: str = ""                   # stage1.pt written by `mstar pretrain`
    features: str = ""                 # patch features of the cohort (same encoder as in pretraining); empty:
                                       # reports and RNA only (the manifest's cases)
    manifest: str | None = None        # slides and cases (any manifest schema); None: every feature file
    reports: str | None = None         # reports (needs a checkpoint with a report encoder)
    report_prep: str = "auto"          # auto (CSV tables: OCR clean-up, one per patient) | ocr | none
    rna: str | None = None             # RNA table or per-case folder (needs a checkpoint with a gene encoder)
    rna_layout: str = "auto"
    text_encoder: str | None = None    # the text model's folder, if it moved since pretraining
    batch_size: int = 8                # slides (texts, profiles) per forward pass
    device: str = "auto"
    skip_missing: bool = False
    text_cache: str | None = None      # folder of a frozen text encoder's text states (mstar pretrain)
    out: str | None = None             # runs folder: <out>/embed/<name>/ (default runs/, or out_h5's folder)
    name: str | None = None
    out_h5: str | None = None          # write the h5 here instead (the run folder still holds config.yaml)

    KIND: ClassVar[str] = "embed"
    REQUIRED: ClassVar[tuple[str, ...]] = ("stage1",)
    CHOICES: ClassVar[dict[str, tuple]] = {"report_prep": ("auto", "ocr", "none")}
    AT_LEAST: ClassVar[dict[str, float]] = {"batch_size": 1}
    INPUTS: ClassVar[tuple[str, ...]] = ("stage1", "manifest", "features", "reports", "rna")
    PATHS: ClassVar[tuple[str, ...]] = ("text_encoder", "text_cache", "out_h5")
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "out_h5", "device", "batch_size", "text_encoder",
                                          "text_cache")
    ALIASES: ClassVar[dict[str, str]] = {"checkpoint": "stage1"}

    def default_name(self) -> str:
        return Path(self.manifest).stem if self.manifest else Path(self.features).name

    def run_dir(self) -> Path:
        """``<out>/embed/<name>``; ``out`` defaults to ``runs`` (or, with ``out_h5``, the h5 file's
        folder)."""
        out = self.out or (str(Path(self.out_h5).parent) if self.out_h5 else "runs")
        return Path(out) / self.group() / (self.name or self.default_name())

    def h5_path(self) -> Path:
        """Where the embeddings go."""
        return Path(self.out_h5) if self.out_h5 else self.run_dir() / H5_NAME

    def input_paths(self) -> dict[str, Any]:
        from mstar.data.feature_dirs import resolve_feature_dir

        return {"stage1": self.stage1, "manifest": self.manifest,
                "features": resolve_feature_dir(self.features) if self.features else None,
                "reports": self.reports, "rna": self.rna}


def _slide_rows(manifest: str | None, features: str | None) -> pd.DataFrame:
    """``slide, case, label, split='all'`` from a manifest, or one row per feature file of the folder."""
    from mstar.data.feature_dirs import feature_slides, resolve_feature_dir
    from mstar.pretrain.stage1_inputs import read_slide_table

    if manifest:
        rows = read_slide_table(manifest, require_label=False)
    elif not features:
        raise MstarError("embed needs --features (slides) or a --manifest (cases for their reports and RNA)")
    else:
        folder = resolve_feature_dir(features)
        slides = feature_slides(folder)
        rows = pd.DataFrame({"slide": slides, "case": slides, "label": ""})
    rows = rows.copy()
    rows["split"] = "all"
    return rows


@torch.no_grad()
def _encode(fn, inputs: list, batch_size: int) -> np.ndarray:
    out = [fn(inputs[i:i + batch_size]).float().cpu().numpy() for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_cohort(cfg: EmbedConfig, overwrite: bool = False) -> dict:
    """Embed every slide of a cohort (and its report and RNA profile) with a stage-1 model.

    Args:
        cfg: The settings (see :class:`EmbedConfig`).
        overwrite: Replace finished embeddings.

    Returns:
        ``{"out", "run", "slides", "reports", "genes", "dim"}`` (counts of embedded items).
    """
    import h5py

    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset, collate_stage1
    from mstar.pretrain.stage1_model import load_stage1
    from mstar.utils.atomic import atomic_path

    cfg.validate()
    checkpoint, features, manifest, reports, rna = (cfg.stage1, cfg.features, cfg.manifest, cfg.reports,
                                                    cfg.rna)
    out, device, batch_size = cfg.h5_path(), cfg.device, cfg.batch_size
    folder = open_run(cfg, overwrite)
    if folder.finished and out.is_file():
        return {**folder.record.get("summary", {}), "finished_before": True}
    model, meta = load_stage1(checkpoint, cfg.text_encoder)
    if features:
        check_stage1_features(features, meta, checkpoint)
    if reports and model.text is None:
        raise MstarError(f"{checkpoint}: this model has no report encoder (pretrained without --reports); "
                         "drop --reports")
    if rna and model.gene_encoder is None:
        raise MstarError(f"{checkpoint}: this model has no gene encoder (pretrained without --rna); "
                         "drop --rna")
    dev = resolve_device(device)
    model.to(dev)
    model.load_text_cache(cfg.text_cache)
    rows = _slide_rows(str(manifest) if manifest else None, str(features) if features else None)
    vocabulary = model.gene_encoder.vocabulary if model.gene_encoder is not None else None
    max_tokens = model.text.max_tokens if model.text is not None else None
    cohort = build_cohort(rows, str(features) if features else None, str(reports) if reports else None,
                          str(rna) if rna else None, cfg.rna_layout, vocabulary=vocabulary if rna else None,
                          classes=meta.get("classes"), skip_missing=cfg.skip_missing, splits=("all",),
                          report_prep=cfg.report_prep, max_tokens=max_tokens)
    cohort.check_width(features, model.in_dim)
    items = cohort.splits["all"]
    n, dim = len(items), model.dim
    data = Stage1Dataset(cohort.bags, items)

    def slides(idx: list[int]) -> torch.Tensor:
        batch = collate_stage1([data[i] for i in idx])
        return model.encode_slide(batch["x"].to(dev), batch["mask"].to(dev))  # (b, dim)

    has_slide = np.asarray(items.has_slide, dtype=bool)
    z_slide = np.full((n, dim), np.nan, np.float32)
    if has_slide.any():
        z_slide[has_slide] = _encode(slides, list(np.flatnonzero(has_slide)), batch_size)  # (S', dim)
    z_report = np.full((n, dim), np.nan, np.float32)
    has_report = np.array([t is not None for t in items.texts])
    if has_report.any():
        z_report[has_report] = _encode(model.encode_text, [t for t in items.texts if t is not None],
                                       batch_size)
    z_gene = np.full((n, dim), np.nan, np.float32)
    has_gene = items.has_gene.astype(bool)
    if has_gene.any():
        values = torch.from_numpy(items.gene_values[has_gene])
        mask = torch.from_numpy(items.gene_mask[has_gene])
        pairs = list(zip(values, mask))
        z_gene[has_gene] = _encode(lambda b: model.encode_gene(torch.stack([v for v, _ in b]).to(dev),
                                                               torch.stack([m for _, m in b]).to(dev)),
                                   pairs, batch_size)
    label_of = dict(zip(rows["case"], rows["label"].astype(str)))
    labels = [label_of.get(c, "") for c in items.cases]
    text = h5py.string_dtype()
    run = folder.start(cfg)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("slide_id", data=np.array(items.slides, dtype=object), dtype=text)
        f.create_dataset("case_id", data=np.array(items.cases, dtype=object), dtype=text)
        f.create_dataset("label", data=np.array(labels, dtype=object), dtype=text)
        f.create_dataset("report_key", data=np.array([k or "" for k in items.report_keys], dtype=object),
                         dtype=text)
        for name, value in (("slide", z_slide), ("report", z_report), ("gene", z_gene)):
            f.create_dataset(name, data=value.astype(np.float32))
        f.create_dataset("has_slide", data=has_slide)
        f.create_dataset("has_report", data=has_report)
        f.create_dataset("has_gene", data=has_gene)
        f.attrs.update({"checkpoint": str(checkpoint), "dim": dim, "in_dim": model.in_dim or 0,
                        "normalised": False, "genes": cohort.counts.get("genes", 0)})
        f.attrs["checkpoint_digest"] = content_digest(Path(checkpoint))  # what identifies the model
        if reports and Path(reports).is_file():  # which report texts the report vectors are of
            f.attrs["reports_digest"] = file_digest(Path(reports))
        if meta.get("train_cases") is not None:  # the cases the model was trained on (JSON list)
            f.attrs["train_cases"] = json.dumps(meta["train_cases"])
            f.attrs["train_cases_complete"] = bool(meta.get("train_cases_complete", True))
    model.save_text_cache(cfg.text_cache)
    summary = {"out": str(out), "run": str(run), "slides": n, "reports": int(has_report.sum()),
               "genes": int(has_gene.sum()), "dim": dim}
    folder.finish(summary=summary)
    log.info("embedded %(slides)d slides, %(reports)d reports, %(genes)d RNA profiles -> %(out)s", summary)
    return summary
