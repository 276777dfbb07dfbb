"""Zero-shot classification of RNA-seq or report embeddings against the prompts' class embeddings.

The stage-1 model embeds each val/test case's RNA profile (``modality: gene``) or prepared report
(``modality: report``); its class is the prompt class whose text embedding is most similar (cosine). Cases
without that modality are left out and counted (e.g. TCGA-SKCM has RNA but almost no reports). Metrics are
those of slide zero-shot (balanced accuracy, weighted F1, macro-AUC with bootstrap CIs; chance 1/C and 0.5).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.zeroshot.config import ZeroShotConfig
from mstar.zeroshot.scoring import metric_entries, softmax


def embed_modality(prep, cfg: ZeroShotConfig, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``(rows that have the modality, their L2-normalised embeddings (S, E))`` for the cases of ``rows``."""
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_data import Stage1Dataset
    from mstar.pretrain.stage1_eval import embed_dataset

    model = prep.model
    if cfg.modality == "gene" and model.gene_encoder is None:
        raise MstarError(f"{cfg.stage1}: the model has no gene encoder (pretrained without --rna); "
                         "modality gene needs one")
    table = (rows[["case", "slides", "label"]].explode("slides").rename(columns={"slides": "slide"})
             .assign(split="all").reset_index(drop=True))  # reports keyed by slide id are found too
    vocabulary = model.gene_encoder.vocabulary if model.gene_encoder is not None and cfg.rna else None
    cohort = build_cohort(table, None, cfg.reports if cfg.modality == "report" else None,
                          cfg.rna if cfg.modality == "gene" else None, cfg.rna_layout, vocabulary=vocabulary,
                          classes=list(prep.cohort.classes), splits=("all",), report_prep=cfg.report_prep,
                          max_tokens=model.text.max_tokens if model.text is not None else None)
    items = cohort.splits["all"]
    emb = embed_dataset(model, Stage1Dataset(None, items), cfg.batch_size, next(model.parameters()).device)
    model.save_text_cache(cfg.text_cache)
    has = emb[f"has_{cfg.modality}"]
    z = emb[cfg.modality][has]
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    kept = rows.set_index("case").loc[[c for c, h in zip(items.cases, has) if h]].reset_index()
    return kept, z


def _entries(y: np.ndarray, scores: np.ndarray, classes: list[str], key: str, cfg: ZeroShotConfig) -> dict:
    """Metrics over every prompt class; when some class has no case here (no RNA for UCEC, no reports for
    SKCM), the macro-AUC is that of the classes present (softmax over their prompts), marked ``classes``."""
    probs = softmax(scores, cfg.temperature)
    out = metric_entries(y, probs, classes, key, cfg.bootstrap, cfg.seed)
    present = np.unique(y)
    if len(present) < len(classes) and len(present) >= 2:
        index = {c: i for i, c in enumerate(present)}
        sub = metric_entries(np.array([index[v] for v in y]), softmax(scores[:, present], cfg.temperature),
                             [classes[c] for c in present], key, cfg.bootstrap, cfg.seed)
        for name in ("auc_macro", "auc_weighted"):
            if f"{key}/{name}" in sub:
                out[f"{key}/{name}"] = {**sub[f"{key}/{name}"], "classes": [classes[c] for c in present]}
    return out


def zero_shot_by_embedding(cfg: ZeroShotConfig, prep, rows: pd.DataFrame, folder,
                           seen: int | None = None) -> dict:
    """Score; write ``metrics.json``, ``predictions.csv`` and the test confusion matrix into the run
    folder (``seen``: how many of the cases the stage-1 model was trained on, recorded in the meta)."""
    from mstar.eval.plots import plot_confusion
    from mstar.eval.results import write_metrics_json, write_predictions_csv

    start = time.perf_counter()
    key, classes = cfg.modality, prep.cohort.classes
    kept, z = embed_modality(prep, cfg, rows)
    dropped = sorted(set(rows["case"]) - set(kept["case"]))
    if not (kept["split"] == "test").any():
        what = "report" if key == "report" else "RNA profile"
        raise MstarError(f"{cfg.manifest}: no test case has a {what}")
    scores = z @ prep.class_emb.cpu().numpy().T  # (S, C)
    probs = softmax(scores, cfg.temperature)
    split, y = kept["split"].to_numpy(), kept["y"].to_numpy()
    metrics = {}
    for name in ("val", "test"):
        sel = split == name
        if sel.any():
            metrics[name] = _entries(y[sel], scores[sel], classes, key, cfg)
    run = Path(folder.start(cfg))
    table = pd.DataFrame({"split": split, "case": kept["case"], "label": kept["label"],
                          f"{key}_predicted": [classes[i] for i in probs.argmax(axis=1)]})
    for c, cls in enumerate(classes):
        table[f"{key}_prob_{cls}"] = probs[:, c]
    write_predictions_csv(run / "predictions.csv", table)
    test = split == "test"
    (run / "figures").mkdir(parents=True, exist_ok=True)
    plot_confusion(y[test], probs[test].argmax(axis=1), classes, run / "figures" / f"confusion_{key}.png",
                   title=f"zero-shot ({key} embeddings), test")
    meta = {"task": "zero-shot", "modality": key, "stage1": cfg.stage1, "prompts": prep.prompts.source,
            "manifest": str(cfg.manifest), "classes": classes, "chosen_j": None, "j_source": None,
            "temperature": cfg.temperature, "bootstrap": cfg.bootstrap, "seed": cfg.seed,
            "dropped_cases": dropped, "n_dropped": len(dropped), "heatmaps": [], "stage1_seen_cases": seen,
            "seconds": round(time.perf_counter() - start, 1),
            "note": f"{key} embedding vs class prompt embeddings (cosine); cases without a {key} are left "
                    "out "
                    "(n_dropped); chance = 1/C for balanced accuracy, 0.5 for AUC"}
    write_metrics_json(run / "metrics.json", metrics, meta=meta)
    folder.finish()
    return {"run": str(run), "metrics": metrics, "chosen_j": None, "j_source": None, "classes": classes,
            "heatmaps": [], "dropped": dropped}
