"""The steps of `mstar demo`: each builds a stage's config from :mod:`mstar.demo.settings`, runs the stage's
library call, and returns ``(output location, key numbers)``; numbers also go to ``ctx.results``.

The stage-1-based steps (pretraining, self-training, zero-/few-shot, retrieval) are in
:mod:`mstar.demo.stage1_steps`. The step functions with explicit arguments (``step_multimodal`` here;
``step_pretrain``, ``step_selftrain``, ``step_zero_few_shot`` there) are also what tests and benchmarks call
on other cohorts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from mstar.demo.settings import (
    DEMO_ENCODER,
    DEMO_MULTIMODAL,
    DEMO_MULTIMODAL_MODELS,
    DEMO_REPORT,
    DEMO_TRAINING,
)
from mstar.eval.results import format_ci


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch intra-op threads set to ``n`` inside the block (tiny models run several times faster on one
    thread of a small, busy CPU); ``None`` leaves them alone."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def demo_features(work: Path, encoder: str = DEMO_ENCODER) -> Path:
    """The demo encoder's features folder in a work folder."""
    from mstar.features.encoders import folder_name

    return Path(work) / "features" / folder_name(encoder)


# ---- data ----
def step_synth(ctx) -> tuple[str, str]:
    """The synthetic cohort (slides, reports, RNA, survival, manifests)."""
    from mstar.data.synthetic import SynthConfig, make_cohort

    s = make_cohort(ctx.cohort, SynthConfig(cases=ctx.cases, seed=ctx.seed), workers=ctx.workers)
    ctx.results["synth"] = s
    return str(ctx.cohort), (f"{s['cases']} cases, {s['slides']} slides, {s['reports']} reports, "
                             f"RNA {s['rna_cases']}x{s['genes']}, {s['censored']:.0%} censored")


def step_tile(ctx) -> tuple[str, str]:
    """Tissue segmentation and tile coordinates of every slide."""
    from mstar.slide.batch import tile_many

    summary = tile_many([ctx.cohort / "slides"], ctx.work, workers=ctx.workers)
    ctx.results["tile"] = summary
    ok = summary[summary["status"] == "ok"]
    return str(ctx.work / "tiles"), (f"{int(summary['n_tiles'].sum())} tiles of 256 px @ 0.5 µm/px, "
                                     f"{ok['n_tiles'].median():.0f} per slide (median), "
                                     f"{(summary['status'] != 'ok').sum()} slides without tiles")


def step_extract(ctx) -> tuple[str, str]:
    """``timm:test_vit`` features (random init, 64-d) for the tiled cohort, in both layouts."""
    from mstar.features.extract import extract_features

    start = time.perf_counter()
    # a light encoder: one reading worker beside a one-thread forward beats sharing every core (BENCHMARKS.md)
    workers = 1 if ctx.workers > 1 else 0
    summary = extract_features(ctx.work, DEMO_ENCODER, batch_size=32, workers=workers, precision="fp32",
                               threads=1 if workers else None, device="cpu", save_pt=True)
    seconds = time.perf_counter() - start
    ctx.results["extract"] = summary
    n = int(summary["n_tiles"].sum())
    dim = summary["dim"].dropna()
    return str(demo_features(ctx.work)), (f"{n} tiles -> {int(dim.iloc[0]) if len(dim) else 0}-d features "
                                          f"({DEMO_ENCODER}), {n / max(seconds, 1e-9):.0f} tiles/s, "
                                          f"{(summary['status'] == 'ok').sum()} slides, + pt_files/ mirror")


# ---- supervised ----
def _supervised(ctx, task: str, manifest: str) -> dict:
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    cfg = TrainConfig(task=task, manifest=str(ctx.cohort / "manifests" / manifest),
                      features=str(demo_features(ctx.work)), out=str(ctx.out / "runs"), seed=ctx.seed,
                      **DEMO_TRAINING)
    result = train_task(cfg, progress=False)
    ctx.results[task] = result
    return result


def step_classify(ctx) -> tuple[str, str]:
    """ABMIL cancer-type classification (diagnosis.csv); test macro-AUC and balanced accuracy with CIs."""
    result = _supervised(ctx, "classify", "diagnosis.csv")
    test = result["metrics"]["test"]
    return result["run"], (f"test macro-AUC {format_ci(test['auc_macro'])}, "
                           f"balanced acc. {format_ci(test['balanced_accuracy'])} "
                           f"(n={test['auc_macro']['n']})")


def step_survival(ctx) -> tuple[str, str]:
    """ABMIL discrete-time survival (survival.csv); test C-index with CI."""
    result = _supervised(ctx, "survival", "survival.csv")
    test = result["metrics"]["test"]["c_index"]
    return result["run"], f"test C-index {format_ci(test)} (n={test['n']})"


# ---- multimodal survival ----
def step_multimodal(out: Path, cohort: Path | None = None, features: Path | None = None, seed: int = 0,
                    models: dict[str, dict] | None = None) -> dict:
    """Train the demo's multimodal survival models; return their test C-indices.

    In the synthetic cohort each modality sees the cancer type and TP53 but only its own half of the remaining
    risk, so a model given both can rank survival better than either; the demo's test split is small (about 12
    cases), so the step shows the command path (the fusion gain is measured in RESULTS.md).

    Args:
        out: The demo folder (``cohort/``, ``work/features/<encoder>/`` inside; runs go to ``out/runs``).
        cohort: The synthetic cohort (default ``out/cohort``).
        features: Its features (default: the demo encoder's folder under ``out/work/features``).
        seed: Training seed.
        models: CLI model name -> model arguments (default :data:`DEMO_MULTIMODAL_MODELS`).

    Returns:
        ``{"runs": {model: run dir}, "test": {model: {value, ci_low, ci_high, n}}, "summary": one line}``.
    """
    from mstar.tasks.multimodal import train_multimodal
    from mstar.tasks.multimodal_config import MultimodalConfig

    out = Path(out)
    cohort = Path(cohort) if cohort is not None else out / "cohort"
    features = Path(features) if features is not None else demo_features(out / "work")
    runs, test = {}, {}
    for model, args in (models or DEMO_MULTIMODAL_MODELS).items():
        cfg = MultimodalConfig(model=model, manifest=str(cohort / "manifests" / "multimodal_survival.csv"),
                               features="" if model == "snn" else str(features),
                               rna=str(cohort / "rna" / "cases"),
                               signatures=str(cohort / "signatures.csv"), out=str(out / "runs"), seed=seed,
                               model_args=args, **DEMO_MULTIMODAL)
        result = train_multimodal(cfg, progress=False)
        runs[model], test[model] = result["run"], result["metrics"]["test"]["c_index"]
    names = {"snn": "SNN (RNA)", "abmil": "ABMIL (slides)", "mcat": "MCAT (both)",
             "late": "late fusion (both)"}
    summary = ", ".join(f"{names.get(m, m)} {format_ci(e)}" for m, e in test.items())
    n = next(iter(test.values()))["n"]
    return {"runs": runs, "test": test, "summary": f"test C-index: {summary} (n={n})"}


def demo_multimodal(ctx) -> tuple[str, str]:
    """SNN (RNA only), ABMIL (slides only) and fusion models on the multimodal survival manifest."""
    numbers = step_multimodal(ctx.out, ctx.cohort, demo_features(ctx.work), seed=ctx.seed)
    ctx.results["multimodal"] = numbers
    return str(ctx.out / "runs"), numbers["summary"]


# ---- report generation ----
def step_report(ctx) -> tuple[str, str]:
    """A tiny HistGen-style generator on the demo reports; test BLEU-4 and cancer type stated, vs the
    template. The consensus neighbours are the training reports the stage-1 model (pretrained on the same
    training split) retrieves for each slide."""
    from mstar.pretrain.stage1_embed import EmbedConfig, embed_cohort
    from mstar.tasks.report_config import ReportConfig
    from mstar.tasks.report_task import train_report

    manifest, reports = ctx.cohort / "manifests" / "diagnosis.csv", ctx.cohort / "reports.json"
    with torch_threads(1):
        embedded = embed_cohort(EmbedConfig(stage1=ctx.results["pretrain"]["checkpoint"],
                                            features=str(demo_features(ctx.work)), manifest=str(manifest),
                                            reports=str(reports), out=str(ctx.out / "runs"),
                                            name="demo-report-neighbours", device="cpu"))
    cfg = ReportConfig(manifest=str(manifest), features=str(demo_features(ctx.work)), reports=str(reports),
                       out=str(ctx.out / "runs"), seed=ctx.seed, neighbour_embeddings=embedded["out"],
                       **DEMO_REPORT)
    result = train_report(cfg)
    ctx.results["report"] = result
    test, base = result["test"], result["test_baseline"]
    meteor = f", METEOR {test['meteor']:.3f}" if "meteor" in test else " (METEOR skipped: no Java)"
    return result["run"], (f"test BLEU-4 {test['bleu_4']:.3f} "
                           f"(template baseline {base['bleu_4']:.3f}){meteor}, "
                           "cancer type stated correctly {} (baseline {})".format(*(
                               "cannot judge" if r.get("cancer_type_accuracy") is None
                               else f"{r['cancer_type_accuracy']:.0%}" for r in (test, base))))
