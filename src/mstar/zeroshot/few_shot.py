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
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.errors import MstarError
from mstar.zeroshot.few_shot_methods import linear_probe, prototype_scores, simpleshot, text_prototypes
from mstar.zeroshot.scoring import DEFAULT_JS, choose_j, point_metrics, softmax

log = logging.getLogger(__name__)

METHODS = ("text_prototypes", "simpleshot", "linear_probe")
SUMMARISED = ("balanced_accuracy", "f1_weighted", "auc_macro")


def draw_support(y: np.ndarray, k: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` cases per class (without replacement), class by class."""
    return np.concatenate([rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c in range(n_classes)])


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
    """Embedded cohort for the draws: ``train``/``val``/``test`` are row indices into ``slide``/``y``/``cases``."""

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
              js: Sequence[int], top_j: int | None, top_patches: int, temperature: float, seed: int) -> list[dict]:
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
                                         [d.support_scores[d.cases[i]] for i in support], ys, n_c, top_patches)
                j = int(top_j) if top_j else choose_j(prototype_scores(d.patches["val"], protos, js), y[d.val],
                                                      classes, temperature)[0]
                probs = softmax(prototype_scores(d.patches["test"], protos, [j])[j], temperature)
                records.append({"method": "text_prototypes", **base, "j": j, **point_metrics(y[test], probs, classes)})
            if "simpleshot" in methods:
                probs = softmax(simpleshot(d.slide[support], ys, d.slide[test], n_c, d.center), temperature)
                records.append({"method": "simpleshot", **base, **point_metrics(y[test], probs, classes)})
            if "linear_probe" in methods:
                probs, c_used = linear_probe(d.slide[support], ys, d.slide[test], n_c, seed)
                records.append({"method": "linear_probe", **base, "C": c_used, **point_metrics(y[test], probs, classes)})
    return records


def few_shot(checkpoint, prompts: str | os.PathLike, manifest: str | os.PathLike, features: str | os.PathLike,
             shots: Sequence[int] = (1, 2, 4, 8), runs: int = 10, methods: Sequence[str] = METHODS,
             out: str | os.PathLike = "runs", name: str | None = None, js: Sequence[int] = DEFAULT_JS,
             top_j: int | None = None, top_patches: int = 100, label_column: str = "auto",
             temperature: float = 0.07, seed: int = 0, device: str = "auto",
             text_encoder: str | os.PathLike | None = None, skip_missing: bool = False,
             show_progress: bool = True) -> dict:
    """Run the few-shot protocol and write the run directory.

    Args:
        checkpoint: Stage-1 checkpoint (or a ``Stage1Model``).
        prompts: Prompt JSON (text-guided prototypes need the class texts).
        manifest: Cohort CSV with train (support pool), val (j choice) and test (query) rows.
        features: Patch features of the cohort.
        shots: Support cases per class; values above the smallest training class are skipped.
        runs: Seeded support draws per k.
        methods: Subset of ``text_prototypes``, ``simpleshot``, ``linear_probe``.
        out: Runs folder; the run is ``<out>/fewshot/<name>``.
        name: Run name (default ``<manifest stem>-<prompts stem>``).
        js: Pooling sizes for the text prototypes.
        top_j: Fixed j instead of choosing it on val.
        top_patches: Support patches averaged per prototype.
        label_column, temperature, seed, device, text_encoder, skip_missing, show_progress: As in zero-shot.

    Returns:
        ``{"run", "summary" (DataFrame), "runs" (DataFrame), "metrics", "shots", "skipped_shots"}``.
    """
    from mstar.data.feature_dirs import resolve_feature_dir
    from mstar.eval.plots import plot_metric_vs_k
    from mstar.eval.results import write_metrics_json
    from mstar.utils.atomic import atomic_path
    from mstar.zeroshot.embed import embed_cases
    from mstar.zeroshot.loading import prepare

    start = time.perf_counter()
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise MstarError(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    if runs < 1 or not shots or min(shots) < 1:
        raise MstarError("--runs and every --shots value must be at least 1")
    js = sorted({int(j) for j in js} | ({int(top_j)} if top_j else set()))
    prep = prepare(checkpoint, prompts, manifest, label_column, text_encoder, device)
    classes, n_c = prep.cohort.classes, len(prep.cohort.classes)
    table = prep.cohort.table
    for split in ("train", "test"):
        if not (table["split"] == split).any():
            raise MstarError(f"{manifest}: no '{split}' rows; few-shot draws support from train and queries test")
    use_text = "text_prototypes" in methods
    query_cases = table.loc[table["split"].isin(["val", "test"]), "case"].tolist() if use_text else []
    pool = dict(zip(table.loc[table["split"] == "train", "case"], table.loc[table["split"] == "train", "y"]))
    emb = embed_cases(prep.model, resolve_feature_dir(features), table, prep.class_emb, keep_patches=query_cases,
                      support_pool=pool if use_text else None, top=top_patches, skip_missing=skip_missing,
                      show_progress=show_progress)
    rows = table.set_index("case").loc[emb.cases].reset_index()
    split, y = rows["split"].to_numpy(), rows["y"].to_numpy()
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    counts = np.bincount(y[train], minlength=n_c)
    if counts.min() == 0:
        raise MstarError(f"{manifest}: class {classes[int(counts.argmin())]!r} has no training case to draw from")
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
        records = run_draws(data, classes, kept, runs, methods, js, top_j, top_patches, temperature, seed)
    runs_df = pd.DataFrame(records)
    summary = _summary(runs_df)

    run_dir = Path(out) / "fewshot" / (name or f"{Path(manifest).stem}-{Path(str(prompts)).stem}")
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    for fname, df in (("runs.csv", runs_df), ("summary.csv", summary)):
        with atomic_path(run_dir / fname) as tmp:
            df.to_csv(tmp, index=False)
    entries = {f"{r.method}/k{r.k}/{r.metric}": {"value": r.median, "ci_low": np.nan, "ci_high": np.nan,
                                                 "n": int(len(test)), "iqr_low": r.q25, "iqr_high": r.q75,
                                                 "runs": r.runs} for r in summary.itertuples()}
    for metric in ("balanced_accuracy", "auc_macro"):
        plot_metric_vs_k(runs_df, run_dir / "figures" / f"fewshot_{metric}.png", metric=metric,
                         title=f"few-shot {metric} on test (median, IQR over {runs} draws)")
    meta = {"task": "few-shot", "prompts": prep.prompts.source, "manifest": str(manifest), "classes": classes,
            "shots": kept, "skipped_shots": skipped, "runs": runs, "methods": list(methods), "js": js,
            "top_j": top_j, "top_patches": top_patches, "seed": seed, "n_query": int(len(test)),
            "train_counts": {c: int(n) for c, n in zip(classes, counts)}, "dropped_cases": emb.dropped,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "value = median over support draws; iqr_low/iqr_high = quartiles; query = test split"}
    write_metrics_json(run_dir / "metrics.json", {"test": entries}, meta=meta)
    return {"run": str(run_dir), "summary": summary, "runs": runs_df, "metrics": {"test": entries},
            "shots": kept, "skipped_shots": skipped}
