"""Updating the supporting knowledge of a finished `mstar predict` folder without predicting again.

The knowledge file is meant to be edited (docs/predict.md): a new concept, a corrected source. When a
finished prediction folder is re-run and the only changes are the citation inputs (``knowledge``,
``stage1``, ``top_statements``), every slide's predictions, evidence tiles and heatmaps stay as they are and
only its citations are ranked again (each slide's features and tile scores are read back from the folder);
``evidence/<slide>.json``, the pages, ``config.yaml`` and ``run.json`` are rewritten. Any other change still
needs ``--overwrite``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError
from mstar.eval.results import read_predictions_csv
from mstar.predict.config import PredictConfig
from mstar.run.fingerprint import differences, fingerprint
from mstar.run.folder import RunFolder, read_record
from mstar.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

CITATION_INPUTS = ("knowledge", "stage1")
CITATION_SETTINGS = ("top_statements",)


def _without_citations(fp: dict) -> dict:
    return {"settings": {k: v for k, v in fp.get("settings", {}).items() if k not in CITATION_SETTINGS},
            "inputs": {k: v for k, v in fp.get("inputs", {}).items() if k not in CITATION_INPUTS}}


def citations_changed_only(cfg: PredictConfig) -> dict | None:
    """The new fingerprint when ``cfg.out`` holds a finished prediction whose settings and inputs differ
    from ``cfg``'s in the citation inputs only; else None (nothing changed, or more than those)."""
    record = read_record(cfg.run_dir())
    if record is None or record.get("status") != "finished":
        return None
    old, new = record.get("fingerprint", {}), fingerprint(cfg.identity(), cfg.input_paths())
    if not differences(old, new) or differences(_without_citations(old), _without_citations(new)):
        return None
    return new


def recite(cfg: PredictConfig, run, knowledge, new_fingerprint: dict) -> list[dict]:
    """Rank the knowledge again for every slide of the finished folder ``cfg.out`` (``knowledge``: a
    :class:`~mstar.predict.knowledge.KnowledgeRanker`, or None to drop the citations); rewrite the
    records, the pages, ``config.yaml`` and ``run.json``. Returns the records."""
    from mstar.features.io import load_features
    from mstar.predict.html import write_pages

    out = Path(cfg.run_dir())
    records = []
    for path in sorted((out / "evidence").glob("*.json")):
        record = json.loads(path.read_text())
        if knowledge is None:
            record.pop("knowledge", None)
        else:
            scores = pd.read_csv(out / record["files"]["csv"])["score"].to_numpy(float)  # tile order
            feats = np.asarray(load_features(record["features"])[0])
            if len(feats) != len(scores):
                raise MstarError(f"{record['features']}: {len(feats)} tiles, but the slide's evidence has "
                                 f"{len(scores)}; the features changed since: pass --overwrite")
            record["knowledge"] = knowledge.cite(torch.as_tensor(feats), scores, record.get("predicted"))
        write_text_atomic(path, json.dumps(record, indent=1, default=float))
        records.append(record)
    table = read_predictions_csv(out / "predictions.csv")
    errors = [{"slide": r["slide"], "status": "error", "error": r["error"]}
              for r in table[table["status"] == "error"].to_dict("records")]
    write_pages(out, records, errors, run, cfg)
    write_text_atomic(out / "config.yaml", cfg.to_yaml())
    folder = RunFolder(out, True, read_record(out) or {})
    folder.save_record(fingerprint=new_fingerprint, recited=len(records))
    log.info("%s: citations ranked again for %d slides (predictions unchanged)", out, len(records))
    return records
