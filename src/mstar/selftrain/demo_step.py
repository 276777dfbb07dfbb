"""The demo's stage-2 step: a short self-training of the demo encoder, then the downstream before/after.

Without a stage-1 checkpoint it first trains the toy stage-1-format aggregator
(:mod:`~mstar.selftrain.toy_aggregator`) on the training-fold slides only. The manifest's test-fold slides
are held out of self-training (they are the validation slides), so the downstream test set never feeds the
student or the aggregator.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

DEMO_ENCODER = "timm:test_vit"
DEMO_SELFTRAIN = dict(epochs=2, steps_per_epoch=10, slides_per_step=4, patches_per_slide=8, lr=3e-5,
                      val_patches_per_slide=24, probe_slides=16, bootstrap=300, extract_batch=64)


@contextlib.contextmanager
def _threads(n: int | None):
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _folds(manifest: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``({slide: label}, {slide: fold})`` from a diagnosis manifest (``case,slide,label,fold``)."""
    import pandas as pd

    table = pd.read_csv(manifest, dtype=str)
    labels, folds = {}, {}
    for row in table.itertuples():
        for sid in str(row.slide).split(";"):
            labels[sid], folds[sid] = row.label, row.fold
    return labels, folds


def step_selftrain(out: Path, *, work: Path, cohort: Path, aggregator: Path | None = None,
                   encoder: str = DEMO_ENCODER, seed: int = 0, compare: bool = True, before: dict | None = None,
                   threads: int | None = 1, settings: dict | None = None,
                   held_out_folds: tuple[str, ...] = ("test",)) -> dict:
    """Self-train the demo encoder and (optionally) compare cancer-type classification before/after.

    Args:
        out: folder of this step (``toy_stage1.pt``, ``run/``).
        work: the demo work folder (``tiles/``, ``features/<encoder>/``).
        cohort: the synthetic cohort (``manifests/diagnosis.csv``, masks for the patch labels).
        aggregator: a stage-1 checkpoint; None trains the toy one.
        encoder: the demo patch encoder (features must exist).
        seed: seed of every part.
        compare: re-extract with the new encoder and retrain the classifier.
        before: the demo's classification result on the old features (not retrained when given).
        threads: torch threads during the step (1: tiny models run several times faster single-threaded on
            small CPUs; None: unchanged).
        settings: overrides of :data:`DEMO_SELFTRAIN`.
        held_out_folds: manifest folds held out of self-training (its validation slides).

    Returns:
        ``run``, ``encoder``, ``seconds``, ``cosine_before/after``, ``knn_before/after``,
        ``linear_before/after`` (held-out balanced accuracies) and, with ``compare``, ``downstream`` (the
        before/after table rows) and ``auc_before/after``.
    """
    from mstar.features.encoders import folder_name
    from mstar.selftrain.config import SelfTrainConfig
    from mstar.selftrain.toy_aggregator import train_toy_stage1
    from mstar.selftrain.train import self_train

    start = time.perf_counter()
    out, work, cohort = Path(out), Path(work), Path(cohort)
    features = work / "features" / folder_name(encoder)
    manifest = cohort / "manifests" / "diagnosis.csv"
    labels, folds = _folds(manifest)
    result: dict = {}
    with _threads(threads):
        if aggregator is None:
            train_labels = {s: v for s, v in labels.items() if folds[s] == "train"}
            toy = train_toy_stage1(features, train_labels, out / "toy_stage1.pt", dim=32, epochs=10, seed=seed)
            aggregator, result["toy_stage1"] = Path(toy["checkpoint"]), toy
        have = {p.stem for p in features.glob("*.h5")}
        held_out = sorted(s for s, f in folds.items() if f in held_out_folds and s in have)
        cfg = SelfTrainConfig(tiles=str(work), features=str(features), aggregator=str(aggregator), encoder=encoder,
                              out=str(out / "run"), val_slides=held_out, seed=seed,
                              **{**DEMO_SELFTRAIN, **(settings or {})})
        res = self_train(cfg, progress=False)
        initial, final = res["metrics"]["initial"], res["metrics"]["final"]
        result.update({"run": res["run"], "encoder": res["encoder"]})
        for key, name in (("cosine", "cosine"), ("knn", "knn_balanced_accuracy"), ("linear", "linear_balanced_accuracy")):
            result[f"{key}_before"] = initial.get(name, {}).get("value", float("nan"))
            result[f"{key}_after"] = final.get(name, {}).get("value", float("nan"))
        if compare:
            from mstar.selftrain.downstream import compare_downstream
            from mstar.tasks.demo_steps import DEMO_TRAINING

            cmp = compare_downstream(res["run"], work, manifest, features, DEMO_TRAINING, seed=seed, before=before,
                                     extract_kwargs={"device": "cpu", "workers": 0})
            table = cmp["table"].set_index("metric")
            result["downstream"] = cmp["table"].to_dict(orient="records")
            if "auc_macro" in table.index:
                result["auc_before"] = float(table.loc["auc_macro", "before_value"])
                result["auc_after"] = float(table.loc["auc_macro", "after_value"])
    result["seconds"] = time.perf_counter() - start
    return result


def demo_step(ctx) -> tuple[str, str]:
    """Adapter for ``mstar.demo.STEPS``: ``(output folder, key numbers)``; result in ``ctx.results["selftrain"]``."""
    stage1 = ctx.results.get("pretrain") or {}
    r = step_selftrain(ctx.out / "selftrain", work=ctx.work, cohort=ctx.cohort, aggregator=stage1.get("checkpoint"),
                       seed=ctx.seed, before=ctx.results.get("classify"))
    ctx.results["selftrain"] = r
    text = (f"held-out cosine(student, target) {r['cosine_before']:.3f} -> {r['cosine_after']:.3f}; patch probes "
            f"k-NN {r['knn_before']:.2f} -> {r['knn_after']:.2f}, linear {r['linear_before']:.2f} -> "
            f"{r['linear_after']:.2f}")
    if "auc_before" in r:
        text += f"; cancer-type test macro-AUC {r['auc_before']:.3f} -> {r['auc_after']:.3f}"
    return r["run"], text
