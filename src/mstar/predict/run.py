"""`mstar predict INPUT... --run RUN --out DIR`: predictions with evidence on new slides.

::

    DIR/config.yaml, run.json      settings and inputs (re-running with the same ones resumes / reports)
    DIR/predictions.csv            one row per slide (probabilities with their spread over the run's models
                                   and the predicted class; or risk, its spread and the risk group)
    DIR/evidence/                  per-slide tile scores, QuPath GeoJSON, heatmap, top tiles, <slide>.json
    DIR/index.html, DIR/slides/    the pages a person reads
    DIR/work/                      tiles and features of slides embedded on the way
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError, first_line
from mstar.eval.results import read_predictions_csv, write_predictions_csv
from mstar.predict.config import PredictConfig
from mstar.predict.ensemble import predict_bag
from mstar.predict.evidence import write_evidence
from mstar.predict.models import RunModels, load_run_models
from mstar.predict.recite import citations_changed_only, recite
from mstar.run.folder import open_run
from mstar.utils.atomic import write_text_atomic
from mstar.utils.progress import track

log = logging.getLogger(__name__)


def predict_slide(run: RunModels, slide_id: str, path: Path, out: Path, top_k: int,
                  knowledge=None, omics: CaseOmics | None = None) -> dict:
    """Predict one slide from its feature file; write its evidence; return its record (also written last,
    as ``evidence/<slide>.json``, which marks the slide done)."""
    from mstar.features.io import load_features

    feats, coords, attrs = load_features(path)
    if len(feats) == 0:
        raise MstarError(f"{path}: the slide has no tiles (empty bag); nothing to predict")
    if coords is None:
        raise MstarError(f"{path}: the features have no tile coordinates; evidence needs them")
    if not np.isfinite(feats).all():
        raise MstarError(f"{path}: features contain NaN/inf; extract the slide again")
    high = np.asarray(feats)  # the high-power features (what a stage-1 model reads for the knowledge)
    if run.context:  # [high | low-power context] per tile, as the run was trained
        from mstar.features.context import load_context

        feats = np.concatenate([np.asarray(feats, np.float32), load_context(path)], axis=1)
    case = None
    profile = None
    if run.multimodal:
        if omics is None:
            raise MstarError(f"{run.run}: a multimodal run; give the cases' omics with --omics TABLE")
        case, profile = omics.profile(slide_id)
    pred = predict_bag(run, torch.as_tensor(np.asarray(feats)), profile)
    evidence = write_evidence(out, slide_id, np.asarray(coords), attrs, pred, run.classes, top_k)
    record = {"slide": slide_id, **({"case": case} if case else {}), **pred.row, "label_text": pred.label,
              "score_kind": pred.score_kind,
              "features": str(path), "slide_path": str(attrs.get("slide_path", "")),
              "mpp": float(attrs.get("mpp_level0", float("nan"))), **evidence}
    if knowledge is not None:
        record["knowledge"] = knowledge.cite(torch.as_tensor(high), pred.scores, pred.row.get("predicted"))
    write_text_atomic(out / "evidence" / f"{slide_id}.json", json.dumps(record, indent=1, default=float))
    return record


def predict(cfg: PredictConfig, overwrite: bool = False, progress: bool = True) -> dict:
    """Apply ``cfg.run`` to ``cfg.inputs``; write predictions, evidence and pages into ``cfg.out``.

    Returns:
        ``{"out", "predictions": DataFrame, "failed": [slide ids], "finished_before"}``.
    """
    from mstar.predict.inputs import (
        check_features,
        check_slides_open,
        embed_slides,
        features_folder_of,
        run_encoder,
    )

    cfg.validate()
    run = load_run_models(cfg.run, cfg.units or None)
    folder_in = features_folder_of(cfg.inputs)
    files = check_features(folder_in, run) if folder_in is not None else None
    slide_paths = []
    if files is None:
        from mstar.slide.batch import expand_slide_paths

        slide_paths = expand_slide_paths(cfg.inputs)  # a missing slide file is one line, not "other inputs"
    knowledge = _knowledge(cfg, run)
    omics = CaseOmics.open(cfg.omics, cfg.cases) if run.multimodal else None
    if omics is not None and not cfg.skip_errors:  # a slide without omics stops before the output folder
        from mstar.slide.reader import slide_id_of

        for slide_id in (sorted(files) if files is not None else [slide_id_of(p) for p in slide_paths]):
            try:
                omics.profile(slide_id)
            except MstarError as exc:
                raise MstarError(f"{exc} (or use --skip-errors to keep going past such slides)") from None
    if not overwrite and (changed := citations_changed_only(cfg)) is not None:  # knowledge edited: re-rank
        records = recite(cfg, run, knowledge, changed)
        table = read_predictions_csv(cfg.run_dir() / "predictions.csv")
        return {"out": str(cfg.run_dir()), "predictions": table, "failed": [], "finished_before": True,
                "recited": len(records)}
    folder = open_run(cfg, overwrite)
    out = folder.path
    if folder.finished:
        return {"out": str(out), "predictions": read_predictions_csv(out / "predictions.csv"), "failed": [],
                "finished_before": True}
    encoder = None
    if files is None:  # slides: the encoder and, without --skip-errors, every slide's metadata are checked
        encoder = run_encoder(run, cfg.checkpoint)  # before anything is written (a missing file is one line)
        if not cfg.skip_errors:
            check_slides_open(slide_paths, cfg.slide_mpp)
    folder.start(cfg)  # only now is anything written (the checks above leave an old folder as it was)
    errors: list[dict] = []
    if files is None:
        files, errors = embed_slides(cfg.inputs, out / "work", run, encoder, cfg.slide_mpp, cfg.batch_size,
                                     cfg.skip_errors)
    records = []
    for slide_id in track(sorted(files), len(files), "predicting", enabled=progress):
        done = out / "evidence" / f"{slide_id}.json"
        if done.is_file():  # resumed: this slide was finished before
            records.append(json.loads(done.read_text()))
            continue
        try:
            records.append(predict_slide(run, slide_id, files[slide_id], out, cfg.top_k, knowledge, omics))
        except MstarError as exc:
            if not cfg.skip_errors:
                raise MstarError(f"{slide_id}: {exc} (use --skip-errors to keep going past bad slides)") \
                    from None
            log.warning("%s: %s (skipped)", slide_id, exc)
            errors.append({"slide": slide_id, "status": "error", "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - e.g. a slide reader failing on a corrupt region
            if not cfg.skip_errors:
                raise
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            log.warning("%s: %s (skipped)", slide_id, reason)
            errors.append({"slide": slide_id, "status": "error", "error": reason})
    errors = list({e["slide"]: e for e in reversed(errors)}.values())  # one row per failed slide
    table = predictions_table(records, errors, run)
    write_predictions_csv(out / "predictions.csv", table)
    from mstar.predict.html import write_pages

    write_pages(out, records, errors, run, cfg)
    folder.finish(slides=len(records), failed=len(errors))
    return {"out": str(out), "predictions": table, "failed": [e["slide"] for e in errors],
            "finished_before": False}


def predictions_table(records: list[dict], errors: list[dict], run: RunModels) -> pd.DataFrame:
    """``predictions.csv``: one row per slide (failed slides with status ``error`` and the reason)."""
    if run.kind == "classification":
        cols = ([f"prob_{c}" for c in run.classes] + ["predicted", "confidence", "confidence_sd"]
                + [f"sd_{c}" for c in run.classes])
    else:
        cols = ["risk", "risk_sd", "risk_group", "high_risk_votes"]
    if run.multimodal:
        cols = ["case", *cols]
    rows = [{"slide": r["slide"], **{c: r.get(c) for c in cols}, "n_models": r["n_models"],
             "n_tiles": r["n_tiles"], "status": "ok", "error": "",
             "evidence": r["files"]["csv"]} for r in records]
    rows += [{"slide": e["slide"], "status": "error", "error": e["error"]} for e in errors]
    columns = ["slide", *cols, "n_models", "n_tiles", "status", "error", "evidence"]
    table = pd.DataFrame(rows, columns=columns).sort_values("slide").reset_index(drop=True)
    for col in ("n_models", "n_tiles", "high_risk_votes"):  # counts stay integers beside failed rows
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


class CaseOmics:
    """The omics table of `mstar predict` on a multimodal run and the case each slide belongs to."""

    def __init__(self, table: pd.DataFrame, source: str, slide_case: dict[str, str]) -> None:
        self.table, self.source, self.slide_case = table, source, slide_case

    @classmethod
    def open(cls, omics: str | None, cases: str | None) -> CaseOmics:
        """Read ``omics`` (any table `--rna` reads, or a folder of per-case ``<case>.csv``) and the optional
        slide -> case manifest ``cases``."""
        from mstar.data.omics import read_omics

        if not omics:
            raise MstarError("a multimodal run predicts from slides and omics: pass --omics TABLE (cases "
                             "x genes, or a folder of <case>.csv) and, when slide ids are not case ids, "
                             "--cases MANIFEST")
        slide_case = {}
        if cases:
            from mstar.data.manifest import read_manifest

            table = read_manifest(cases, require_split=False, require_label=False).table
            slide_case = {s: c for c, ss in zip(table["case"], table["slides"]) for s in ss}
        return cls(read_omics(omics).values, str(omics), slide_case)

    def profile(self, slide_id: str) -> tuple[str, pd.Series]:
        """``(case, omic profile)`` of a slide: its case from the manifest, else the slide id itself, else,
        for TCGA slide ids, the patient barcode (first 12 characters)."""
        index = self.table.index
        # TCGA barcodes are upper case in omics tables; file names are often lower case (histolab's fixture)
        tcga = slide_id[:12].upper() if re.match(r"TCGA-\w\w-\w{4}", slide_id, re.IGNORECASE) else None
        tried = list(dict.fromkeys(c for c in (self.slide_case.get(slide_id), slide_id, tcga) if c))
        for case in tried:
            if case in index:
                return case, self.table.loc[case]
        raise MstarError(f"{self.source}: no omics for slide {slide_id} (tried case "
                         f"{', '.join(tried)}); pass --cases MANIFEST mapping slides to cases")


def _knowledge(cfg: PredictConfig, run: RunModels):
    if not cfg.knowledge:
        return None
    from mstar.predict.knowledge import KnowledgeRanker

    return KnowledgeRanker.open(cfg.knowledge, cfg.stage1, cfg.top_statements, run.identity)
