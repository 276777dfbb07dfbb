"""Before/after stage 2 on a downstream task: re-extract with the new encoder, retrain, record both with CIs.

The same supervised run (same manifest, model, settings, seed) is trained on the features of the encoder
before stage 2 and on features re-extracted with the self-trained one; ``<run>/downstream.json`` and
``downstream.csv`` hold the test metrics of both side by side (value and 95 % CI).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from mstar.utils.atomic import atomic_path, write_text_atomic


def compare_downstream(run: str | os.PathLike, work: str | os.PathLike, manifest: str | os.PathLike,
                       before_features: str | os.PathLike, training: dict, *, task: str = "classify",
                       runs_out: str | os.PathLike | None = None, seed: int = 0, before: dict | None = None,
                       extract_kwargs: dict | None = None) -> dict:
    """Train ``task`` on the features before and after stage 2 and write the comparison into ``run``.

    Args:
        run: the finished stage-2 run directory (its ``encoder/<name>.pth`` + sidecar are used).
        work: the folder holding ``tiles/``; the new features go to ``work/features/<name>/``.
        manifest: the downstream cohort CSV.
        before_features: features of the encoder before stage 2.
        training: :class:`~mstar.tasks.config.TrainConfig` settings shared by both runs.
        task: ``classify`` or ``survival``.
        runs_out: where the two supervised runs go (default ``run/downstream``).
        seed: seed of both runs.
        before: an already trained result for ``before_features`` with these settings (not retrained).
        extract_kwargs: extra :func:`~mstar.features.extract.extract_features` arguments.

    Returns:
        ``{"before", "after", "table", "features_after"}``.
    """
    from mstar.eval.results import read_metrics_meta
    from mstar.features.encoders import folder_name
    from mstar.features.extract import extract_features
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    run = Path(run)
    meta = read_metrics_meta(run / "metrics.json")
    weights = Path(meta["encoder"])
    name = json.loads(weights.with_suffix(".json").read_text())["name"]
    extract_features(work, name, checkpoint=weights, show_progress=False, **(extract_kwargs or {}))
    after_features = Path(work) / "features" / folder_name(name)
    runs_out = Path(runs_out) if runs_out is not None else run / "downstream"
    results = {}
    for label, feats in (("before", before_features), ("after", after_features)):
        if label == "before" and before is not None:
            results[label] = before
            continue
        cfg = TrainConfig(task=task, manifest=str(manifest), features=str(feats), out=str(runs_out),
                          name=f"{Path(manifest).stem}-{label}-stage2", seed=seed, **training)
        results[label] = train_task(cfg, progress=False)
    rows = []
    for metric, entry in results["before"]["metrics"].get("test", {}).items():
        after = results["after"]["metrics"].get("test", {}).get(metric)
        if after is None:
            continue
        rows.append({"metric": metric, "n": entry["n"],
                     **{f"before_{k}": entry[k] for k in ("value", "ci_low", "ci_high")},
                     **{f"after_{k}": after[k] for k in ("value", "ci_low", "ci_high")}})
    table = pd.DataFrame(rows)
    with atomic_path(run / "downstream.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    doc = {"task": task, "manifest": str(manifest), "split": "test", "features_before": str(before_features),
           "features_after": str(after_features), "runs": {k: v["run"] for k, v in results.items()},
           "metrics": json.loads(table.to_json(orient="records"))}
    write_text_atomic(run / "downstream.json", json.dumps(doc, indent=1) + "\n")
    return {"before": results["before"], "after": results["after"], "table": table,
            "features_after": str(after_features)}
