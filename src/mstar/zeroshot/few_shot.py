"""``mstar few-shot``: k labelled slides per class, repeated seeded draws, a fixed query set (test split).

For every k and run, k support cases per class are drawn from the ``train`` split (seed ``(seed, k, run)``;
every method sees the same draw), each method of :mod:`mstar.zeroshot.few_shot_methods` is fitted and
scored on the ``test`` cases. The text-prototype pooling size j is chosen per run on the ``val`` cases
(or fixed by ``--top-j``). Results are the median and interquartile range over runs.

``runs/fewshot/<name>/``: ``runs.csv`` (one row per method, k and run), ``summary.csv`` (median, IQR),
``metrics.json`` (``test``: ``<method>/k<k>/<metric>`` with the median as ``value`` and the IQR as
``iqr_low``/``iqr_high``; ``ci_low``/``ci_high`` are null: the spread is over support draws, not a
bootstrap) and ``figures/fewshot_<metric>.png`` (metric vs k per method).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.run.folder import open_run
from mstar.zeroshot.config import FewShotConfig
from mstar.zeroshot.few_shot_methods import linear_probe, prototype_scores, simpleshot, text_prototypes
from mstar.zeroshot.scoring import choose_j, point_metrics, softmax

log = logging.getLogger(__name__)

SUMMARISED = ("balanced_accuracy", "f1_weighted", "auc_macro")


def draw_support(y: np.ndarray, k: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` cases per class (without replacement), class by class."""
    return np.concatenate([rng.choice(np.flatnonzero(y == c), size=k, replace=False)
                           for c in range(n_classes)])


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (method, k), g in runs.groupby(["method", "k"], sort=False):
        for metric in SUMMARISED:
            v = g[metric].dropna()
            q = np.quantile(v, [0.25, 0.5, 0.75]) if len(v) else [np.nan] * 3
            rows.append({"method": method, "k": int(k), "metric": metric, "median": q[1], "q25": q[0],
                         "q75": q[2], "runs": int(len(v))})
    return pd.DataFrame(rows)


@dataclass
class FewShotData:
    """Embedded cohort for the draws: ``train``/``val``/``test`` are row indices into
    ``slide``/``y``/``cases``."""

    slide: np.ndarray                      # (S, E) normalised slide embeddings
    y: np.ndarray                          # (S,) class indices
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    cases: list[str]
    support: dict[str, np.ndarray]         # train case -> its top patches for its own class
    support_scores: dict[str, np.ndarray]
    patches: dict[str, list[np.ndarray]]   # "val"/"test" -> projected patches per case
    center: np.ndarray                     # (E,) mean training-pool embedding (SimpleShot centring)


def run_draws(d: FewShotData, classes: list[str], shots: Sequence[int], runs: int, methods: Sequence[str],
              js: Sequence[int], top_j: int | None, top_patches: int, temperature: float,
              seed: int, prototype_rule: str = "per_case") -> list[dict]:
    """One record (method, k, run, support, metrics on test) per method, k and seeded support draw."""
    n_c, records = len(classes), []
    y, test = d.y, d.test
    for k in shots:
        for r in range(runs):
            support = d.train[draw_support(y[d.train], k, n_c, np.random.default_rng([seed, k, r]))]
            ys = y[support]
            base = {"k": k, "run": r, "support": ";".join(d.cases[i] for i in support)}
            if "text_prototypes" in methods:
                protos = text_prototypes([d.support[d.cases[i]] for i in support],
                                         [d.support_scores[d.cases[i]] for i in support], ys, n_c,
                                         top_patches, prototype_rule)
                j = int(top_j) if top_j else choose_j(prototype_scores(d.patches["val"], protos, js),
                                                      y[d.val], classes, temperature)[0]
                probs = softmax(prototype_scores(d.patches["test"], protos, [j])[j], temperature)
                records.append({"method": "text_prototypes", **base, "j": j,
                                **point_metrics(y[test], probs, classes)})
            if "simpleshot" in methods:
                probs = softmax(simpleshot(d.slide[support], ys, d.slide[test], n_c, d.center), temperature)
                records.append({"method": "simpleshot", **base, **point_metrics(y[test], probs, classes)})
            if "linear_probe" in methods:
                probs, c_used = linear_probe(d.slide[support], ys, d.slide[test], n_c, seed)
                records.append({"method": "linear_probe", **base, "C": c_used,
                                **point_metrics(y[test], probs, classes)})
    return records


def few_shot(cfg: FewShotConfig, model=None, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the few-shot protocol and write the run directory.

    Args:
        cfg: The settings (support pool: ``train``; j choice: ``val``; queries: ``test``). Shots above the
            smallest training class are skipped with a warning.
        model: An already loaded ``Stage1Model`` to use instead of loading ``cfg.stage1``.
        overwrite: Replace an existing run folder.
        progress: Progress bar while embedding.

    Returns:
        ``{"run", "summary" (DataFrame), "runs" (DataFrame), "metrics", "shots", "skipped_shots"}``.
    """
    from mstar.data.feature_dirs import resolve_feature_dir
    from mstar.eval.plots import plot_metric_vs_k
    from mstar.eval.results import point_entry, read_metrics_meta, write_metrics_json
    from mstar.utils.atomic import atomic_path
    from mstar.zeroshot.embed import embed_cases
    from mstar.zeroshot.loading import check_unseen, prepare

    cfg.validate()
    folder = open_run(cfg, overwrite)
    if folder.finished:
        meta = read_metrics_meta(folder.path / "metrics.json")
        return {"run": str(folder.path), "summary": pd.read_csv(folder.path / "summary.csv"),
                "runs": pd.read_csv(folder.path / "runs.csv"), "shots": meta["shots"],
                "skipped_shots": meta["skipped_shots"], "finished_before": True}
    manifest, methods, shots, runs, top_j = cfg.manifest, cfg.methods, cfg.shots, cfg.runs, cfg.top_j
    start = time.perf_counter()
    js = sorted({int(j) for j in cfg.js} | ({int(top_j)} if top_j else set()))
    prep = prepare(model if model is not None else cfg.stage1, cfg.prompts, manifest, cfg.label_column,
                   cfg.text_encoder, cfg.device, cfg.text_cache, features=cfg.features)
    classes, n_c = prep.cohort.classes, len(prep.cohort.classes)
    table = prep.cohort.table
    for split in ("train", "test"):
        if not (table["split"] == split).any():
            raise MstarError(f"{manifest}: no '{split}' rows; few-shot draws support from train and "
                             "queries test")
    queries = table[table["split"] == "test"]
    seen = check_unseen(prep.meta, dict(zip(queries["case"], queries["slides"])), cfg.seen_cases, cfg.stage1,
                        "test cases (the queries)")
    use_text = "text_prototypes" in methods
    query_cases = table.loc[table["split"].isin(["val", "test"]), "case"].tolist() if use_text else []
    pool = dict(zip(table.loc[table["split"] == "train", "case"], table.loc[table["split"] == "train", "y"]))
    emb = embed_cases(prep.model, resolve_feature_dir(cfg.features), table, prep.class_emb,
                      keep_patches=query_cases, support_pool=pool if use_text else None, top=cfg.top_patches,
                      skip_missing=cfg.skip_missing, show_progress=progress)
    rows = table.set_index("case").loc[emb.cases].reset_index()
    split, y = rows["split"].to_numpy(), rows["y"].to_numpy()
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    counts = np.bincount(y[train], minlength=n_c)
    if counts.min() == 0:
        raise MstarError(f"{manifest}: class {classes[int(counts.argmin())]!r} has no training case "
                         "to draw from")
    kept = sorted({int(k) for k in shots if k <= counts.min()})
    skipped = sorted({int(k) for k in shots} - set(kept))
    if skipped:
        log.warning("shots %s skipped: the smallest training class has %d cases", skipped, counts.min())
    if not kept:
        raise MstarError(f"--shots: every k exceeds the smallest training class ({counts.min()} cases)")
    if use_text and not top_j and len(val) == 0:
        raise MstarError(f"{manifest}: no 'val' rows to choose j of the text prototypes on; pass --top-j")
    cases = rows["case"].tolist()
    data = FewShotData(
        slide=emb.slide, y=y, train=train, val=val, test=test, cases=cases,
        support={c: emb.support[c] for c in emb.support}, support_scores=emb.support_scores,
        patches={s: [emb.patches[cases[i]] for i in idx] for s, idx in (("val", val), ("test", test))}
        if use_text else {}, center=emb.slide[train].mean(axis=0))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # tiny fits: BLAS threads only add synchronisation (10x on a busy CPU)
        records = run_draws(data, classes, kept, runs, methods, js, top_j, cfg.top_patches, cfg.temperature,
                            cfg.seed, cfg.prototype_rule)
    runs_df = pd.DataFrame(records)
    summary = _summary(runs_df)

    run_dir = folder.start(cfg)
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    for fname, df in (("runs.csv", runs_df), ("summary.csv", summary)):
        with atomic_path(run_dir / fname) as tmp:
            df.to_csv(tmp, index=False)
    entries = {f"{r.method}/k{r.k}/{r.metric}": {**point_entry(r.median, len(test)), "iqr_low": r.q25,
                                                 "iqr_high": r.q75, "runs": r.runs}
               for r in summary.itertuples()}
    for metric in ("balanced_accuracy", "auc_macro"):
        plot_metric_vs_k(runs_df, run_dir / "figures" / f"fewshot_{metric}.png", metric=metric,
                         title=f"few-shot {metric} on test (median, IQR over {runs} draws)")
    meta = {"task": "few-shot", "prompts": prep.prompts.source, "manifest": str(manifest), "classes": classes,
            "shots": kept, "skipped_shots": skipped, "runs": runs, "methods": list(methods), "js": js,
            "top_j": top_j, "top_patches": cfg.top_patches,
            "prototype_rule": cfg.prototype_rule, "seed": cfg.seed, "n_query": int(len(test)),
            "train_counts": {c: int(n) for c, n in zip(classes, counts)}, "dropped_cases": emb.dropped,
            "stage1_seen_cases": seen,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "value = median over support draws; iqr_low/iqr_high = quartiles; query = test split"}
    write_metrics_json(run_dir / "metrics.json", {"test": entries}, meta=meta)
    folder.finish()
    return {"run": str(run_dir), "summary": summary, "runs": runs_df, "metrics": {"test": entries},
            "shots": kept, "skipped_shots": skipped}
