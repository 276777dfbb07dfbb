"""``mstar zero-shot``: slide classification from text prompts alone, with a stage-1 model.

Two scorers per case (slides of a case concatenated):

- ``patch_top<j>``: patch features → ``proj`` → cosine with the class embeddings → top-j mean per class
  (MI-Zero, upstream mSTAR), for every j; ``patch`` is the j chosen on the validation split.
- ``slide``: the aggregator's slide embedding against the class embeddings (no pooling).

``runs/zeroshot/<name>/``: ``metrics.json`` (``val`` and ``test``: every scorer's balanced accuracy,
weighted F1, ROC-AUC with bootstrap CIs), ``predictions.csv`` (one row per val/test case),
``figures/confusion_{slide,patch}.png`` (test), ``figures/topj.png`` and ``heatmaps/<slide>_zeroshot.png``
(patch similarity to the class predicted by the scorer with the better validation balanced accuracy).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.run.folder import open_run
from mstar.zeroshot.config import ZeroShotConfig
from mstar.zeroshot.scoring import choose_j, metric_entries, pooled_scores, softmax

log = logging.getLogger(__name__)


def _prediction_table(rows: pd.DataFrame, classes: list[str], scores: dict[str, np.ndarray], scorers: dict,
                      temperature: float) -> pd.DataFrame:
    table = pd.DataFrame({"split": rows["split"].to_numpy(), "case": rows["case"].to_numpy(),
                          "slides": [";".join(s) for s in rows["slides"]], "label": rows["label"].to_numpy()})
    for name, key in scorers.items():
        probs = softmax(scores[key], temperature)
        table[f"{name}_predicted"] = [classes[i] for i in probs.argmax(axis=1)]
        for c, cls in enumerate(classes):
            table[f"{name}_prob_{cls}"] = probs[:, c]
    for key, s in scores.items():
        if key.startswith("patch_top"):
            table[f"{key}_predicted"] = [classes[i] for i in s.argmax(axis=1)]
    return table


def zero_shot(cfg: ZeroShotConfig, model=None, overwrite: bool = False, progress: bool = True) -> dict:
    """Run zero-shot classification of the manifest's val and test cases and write the run directory.

    Args:
        cfg: The settings (``val`` rows choose j, ``test`` rows are reported).
        model: An already loaded ``Stage1Model`` to use instead of loading ``cfg.stage1`` (the demo shares
            one).
        overwrite: Replace an existing run folder.
        progress: Progress bar while embedding.

    Returns:
        ``{"run", "metrics", "chosen_j", "j_source", "classes", "heatmaps"}``.
    """
    from mstar.data.feature_dirs import resolve_feature_dir
    from mstar.eval.plots import plot_confusion
    from mstar.eval.results import (
        read_metrics_json,
        read_metrics_meta,
        write_metrics_json,
        write_predictions_csv,
    )
    from mstar.zeroshot.embed import embed_cases
    from mstar.zeroshot.figures import plot_topj
    from mstar.zeroshot.heatmaps import draw_heatmaps
    from mstar.zeroshot.loading import check_unseen, prepare

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        meta = read_metrics_meta(folder.path / "metrics.json")
        return {"run": str(folder.path), "metrics": read_metrics_json(folder.path / "metrics.json"),
                "chosen_j": meta["chosen_j"], "j_source": meta["j_source"], "classes": meta["classes"],
                "heatmaps": meta["heatmaps"], "finished_before": True}
    manifest, features, top_j, temperature = cfg.manifest, cfg.features, cfg.top_j, cfg.temperature
    start = time.perf_counter()
    js = sorted({int(j) for j in cfg.js} | ({int(top_j)} if top_j else set()))
    prep = prepare(model if model is not None else cfg.stage1, cfg.prompts, manifest, cfg.label_column,
                   cfg.text_encoder, cfg.device, cfg.text_cache,
                   features if cfg.modality == "slide" else None)
    classes, cohort = prep.cohort.classes, prep.cohort
    rows = cohort.table[cohort.table["split"].isin(["val", "test"])].reset_index(drop=True)
    if not (rows["split"] == "test").any():
        raise MstarError(f"{manifest}: no test rows to evaluate (fold/split 'test'); zero-shot reports the "
                         "test set")
    seen = check_unseen(prep.meta, dict(zip(rows["case"], rows["slides"])), cfg.seen_cases, cfg.stage1,
                        "val/test cases")
    if cfg.modality != "slide":  # RNA-seq or report embeddings against the prompts
        from mstar.zeroshot.by_embedding import zero_shot_by_embedding

        return zero_shot_by_embedding(cfg, prep, rows, folder, seen)
    feature_dir = resolve_feature_dir(features)
    emb = embed_cases(prep.model, feature_dir, rows, prep.class_emb, skip_missing=cfg.skip_missing,
                      show_progress=progress)
    rows = rows.set_index("case").loc[emb.cases].reset_index()
    scores = {"slide": emb.slide @ prep.class_emb.cpu().numpy().T}  # (S, C)
    scores.update({f"patch_top{j}": s for j, s in pooled_scores(emb.logits, js).items()})
    split = rows["split"].to_numpy()
    y = rows["y"].to_numpy()

    val = split == "val"
    if top_j:
        chosen, source, val_table = int(top_j), "--top-j", {}
    else:
        chosen, val_table = choose_j({j: scores[f"patch_top{j}"][val] for j in js}, y[val], classes,
                                     temperature)
        source = "val"
    scores["patch"] = scores[f"patch_top{chosen}"]

    metrics: dict[str, dict] = {}
    for name_ in ("val", "test"):
        sel = split == name_
        if not sel.any():
            continue
        entries: dict = {}
        for key in ["slide", "patch", *(f"patch_top{j}" for j in js)]:
            extra = {"j": chosen, "j_source": source} if key == "patch" else None
            entries.update(metric_entries(y[sel], softmax(scores[key][sel], temperature), classes, key,
                                          cfg.bootstrap, cfg.seed, extra))
        metrics[name_] = entries

    run = folder.start(cfg)
    (run / "figures").mkdir(parents=True, exist_ok=True)
    table = _prediction_table(rows, classes, scores, {"slide": "slide", "patch": "patch"}, temperature)
    write_predictions_csv(run / "predictions.csv", table)
    test = split == "test"
    for key in ("slide", "patch"):
        title = f"zero-shot ({key}{f', j={chosen}' if key == 'patch' else ''}), test"
        plot_confusion(y[test], scores[key][test].argmax(axis=1), classes,
                       run / "figures" / f"confusion_{key}.png", title=title)
    plot_topj(metrics, js, chosen, len(classes), run / "figures" / "topj.png")
    # the heatmaps show the class predicted by the scorer that did better on validation (slide without val)
    primary = "slide"
    if "val" in metrics:
        v = {k: metrics["val"][f"{k}/balanced_accuracy"]["value"] for k in ("slide", "patch")}
        primary = "patch" if v["patch"] > v["slide"] else "slide"
    drawn: list[str] = []
    if cfg.heatmaps:
        test_rows = rows[test].assign(predicted=scores[primary][test].argmax(axis=1))
        drawn = draw_heatmaps(prep.model, prep.class_emb, feature_dir, test_rows, classes, run / "heatmaps",
                              cfg.heatmaps, predicted_by=primary)
    meta = {"task": "zero-shot", "stage1": cfg.stage1,
            "prompts": prep.prompts.source, "manifest": str(manifest), "features": str(feature_dir),
            "classes": classes, "js": js, "chosen_j": chosen, "j_source": source,
            "val_by_j": {str(j): {k: v if np.isfinite(v) else None for k, v in m.items()}
                         for j, m in val_table.items()}, "temperature": temperature,
            "bootstrap": cfg.bootstrap, "seed": cfg.seed, "dropped_cases": emb.dropped, "heatmaps": drawn,
            "heatmap_scorer": primary, "stage1_seen_cases": seen,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "'patch' = patch_top<j> with j chosen on val (never on test); chance = 1/C for balanced "
                    "accuracy, 0.5 for AUC"}
    write_metrics_json(run / "metrics.json", metrics, meta=meta)
    folder.finish()
    return {"run": str(run), "metrics": metrics, "chosen_j": chosen, "j_source": source, "classes": classes,
            "heatmaps": drawn}
