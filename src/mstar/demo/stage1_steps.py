"""The demo steps built on a stage-1 model: pretraining, self-training of the patch encoder, and zero-shot,
few-shot and retrieval with the pretrained model (see :mod:`mstar.demo.steps` for the conventions)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from mstar.demo.settings import (
    DEMO_ENCODER,
    DEMO_PROMPTS,
    DEMO_SELFTRAIN,
    DEMO_STAGE1,
    DEMO_TOY_STAGE1,
    DEMO_TRAINING,
    DEMO_ZERO_FEW_SHOT,
)
from mstar.demo.steps import demo_features, torch_threads
from mstar.eval.results import format_ci
from mstar.utils.atomic import finished_files


# ---- stage 1 ----
def step_pretrain(out: Path, cohort: Path, features: Path, seed: int = 0, threads: int | None = 1,
                  progress: bool = False, **overrides) -> dict:
    """Pretrain stage 1 on a synthetic cohort (``diagnosis.csv``, ``reports.json``, ``rna/expression.csv``).

    Args:
        out: Runs folder (the run is ``<out>/pretrain/demo-stage1``).
        cohort: The synthetic cohort folder (``mstar synth``).
        features: Its patch features folder.
        seed: Seed of the run.
        threads: Torch intra-op threads while training (None: leave as is).
        progress: Print a line per epoch.
        **overrides: Any :class:`~mstar.pretrain.stage1_config.Stage1Config` field.

    Returns:
        ``run``, ``checkpoint``, ``seconds``, ``heldout`` (held-out slides), and per direction
        (``slide_to_report``, ``report_to_slide``, ``slide_to_gene``) ``{"r1", "r5", "r1_ci", "chance_r1",
        "chance_r5", "n"}``, plus ``knn_accuracy`` / ``knn_chance`` (cancer type from slide embeddings).
    """
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain

    cohort = Path(cohort)
    cfg = Stage1Config(manifest=str(cohort / "manifests" / "diagnosis.csv"), features=str(features),
                       reports=str(cohort / "reports.json"), rna=str(cohort / "rna" / "expression.csv"),
                       out=str(out), name="demo-stage1", seed=seed, accelerator="cpu",
                       **{**DEMO_STAGE1, **overrides})
    start = time.perf_counter()
    with torch_threads(threads):
        result = pretrain(cfg, progress=progress)
    val = result["metrics"].get("val", {})
    numbers: dict = {"run": result["run"], "checkpoint": result["checkpoint"],
                     "seconds": round(time.perf_counter() - start, 1)}
    for direction in ("slide_to_report", "report_to_slide", "slide_to_gene"):
        r1, r5 = val.get(f"{direction}/recall@1"), val.get(f"{direction}/recall@5")
        if r1 is not None and r5 is not None:
            numbers[direction] = {"r1": r1["value"], "r5": r5["value"],
                                  "r1_ci": (r1["ci_low"], r1["ci_high"]),
                                  "chance_r1": r1["chance"], "chance_r5": r5["chance"], "n": r1["n"]}
    if "slide_knn_accuracy" in val:
        numbers["knn_accuracy"] = val["slide_knn_accuracy"]["value"]
        numbers["knn_chance"] = val["slide_knn_accuracy"]["chance"]
        numbers["heldout"] = val["slide_knn_accuracy"]["n"]
    return numbers


def pretrain_summary(numbers: dict) -> str:
    """``held-out slide→report R@1 0.42 [0.23, 0.62] (chance 0.04), R@5 ...; slide→RNA ...;
    k-NN type ...``."""
    parts = []
    for direction, label in (("slide_to_report", "slide→report"), ("slide_to_gene", "slide→RNA")):
        d = numbers.get(direction)
        if d:
            parts.append(f"{label} R@1 {d['r1']:.2f} [{d['r1_ci'][0]:.2f}, {d['r1_ci'][1]:.2f}] "
                         f"(chance {d['chance_r1']:.2f}), R@5 {d['r5']:.2f} (chance {d['chance_r5']:.2f})")
    if "knn_accuracy" in numbers:
        parts.append(f"cancer type k-NN {numbers['knn_accuracy']:.2f} (majority {numbers['knn_chance']:.2f})")
    n = numbers.get("heldout")
    return f"held-out{f' ({n} slides)' if n else ''}: " + "; ".join(parts)


def demo_pretrain(ctx) -> tuple[str, str]:
    """Stage 1 on the demo cohort; held-out retrieval vs chance."""
    numbers = step_pretrain(ctx.out / "runs", ctx.cohort, demo_features(ctx.work), seed=ctx.seed)
    ctx.results["pretrain"] = numbers
    return numbers["run"], pretrain_summary(numbers)


# ---- stage 2 ----
def slide_folds(manifest: Path) -> dict[str, str]:
    """``{slide: fold}`` of a manifest with a fixed split (through the one manifest reader)."""
    from mstar.data.manifest import read_manifest

    m = read_manifest(manifest)
    split = m.first_split()
    return {s: f for ss, f in zip(m.table["slides"], split) for s in ss}


def step_selftrain(out: Path, *, work: Path, cohort: Path, stage1: Path | None = None,
                   encoder: str = DEMO_ENCODER, seed: int = 0, compare: bool = True,
                   before: dict | None = None, threads: int | None = 1, settings: dict | None = None,
                   held_out_folds: tuple[str, ...] = ("test",)) -> dict:
    """Self-train the demo encoder and (optionally) compare cancer-type classification before/after.

    Without ``stage1`` the toy stage-1-format aggregator is trained first (``mstar train classify``'s code on
    ``diagnosis.csv``: train split fitted, val selects the epoch). The manifest's ``held_out_folds`` slides
    are held out of self-training (its validation slides), so the downstream test set never feeds the student.

    Args:
        out: Runs folder of this step (``selftrain/<name>``, ``toy_stage1.pt``).
        work: The demo work folder (``tiles/``, ``features/<encoder>/``).
        cohort: The synthetic cohort (``manifests/diagnosis.csv``, masks for the patch labels).
        stage1: A stage-1 checkpoint; None trains the toy one.
        encoder: The demo patch encoder (features must exist).
        seed: Seed of every part.
        compare: Re-extract with the new encoder and retrain the classifier.
        before: The demo's classification result on the old features (not retrained when given).
        threads: Torch threads during the step (None: unchanged).
        settings: Overrides of :data:`~mstar.demo.settings.DEMO_SELFTRAIN`.
        held_out_folds: Manifest folds held out of self-training.

    Returns:
        ``run``, ``encoder``, ``seconds``, ``cosine_before/after``, ``knn_before/after``,
        ``linear_before/after`` (held-out balanced accuracies) and, with ``compare``, ``downstream`` and
        ``auc_before/after``.
    """
    from mstar.selftrain.config import SelfTrainConfig
    from mstar.selftrain.toy_aggregator import train_toy_stage1
    from mstar.selftrain.train import self_train

    start = time.perf_counter()
    out, work, cohort = Path(out), Path(work), Path(cohort)
    features = demo_features(work, encoder)
    manifest = cohort / "manifests" / "diagnosis.csv"
    folds = slide_folds(manifest)
    result: dict = {}
    with torch_threads(threads):
        if stage1 is None:
            toy = train_toy_stage1(manifest, features, out / "toy_stage1.pt", seed=seed, **DEMO_TOY_STAGE1)
            stage1, result["toy_stage1"] = Path(toy["checkpoint"]), toy
        have = {p.stem for p in finished_files(features, (".h5",))}
        held_out = sorted(s for s, f in folds.items() if f in held_out_folds and s in have)
        cfg = SelfTrainConfig(tiles=str(work), features=str(features), stage1=str(stage1), encoder=encoder,
                              out=str(out), val_slides=held_out, seed=seed,
                              **{**DEMO_SELFTRAIN, **(settings or {})})
        res = self_train(cfg, progress=False)
        initial, final = res["metrics"]["initial"], res["metrics"]["final"]
        result.update({"run": res["run"], "encoder": res["encoder"]})
        for key, name in (("cosine", "cosine"), ("knn", "knn_balanced_accuracy"),
                          ("linear", "linear_balanced_accuracy")):
            result[f"{key}_before"] = initial.get(name, {}).get("value", float("nan"))
            result[f"{key}_after"] = final.get(name, {}).get("value", float("nan"))
        if compare:
            from mstar.selftrain.downstream import compare_downstream

            cmp = compare_downstream(res["run"], work, manifest, features, DEMO_TRAINING, seed=seed,
                                     before=before, extract_kwargs={"device": "cpu", "workers": 0})
            table = cmp["table"].set_index("metric")
            result["downstream"] = cmp["table"].to_dict(orient="records")
            if "auc_macro" in table.index:
                result["auc_before"] = float(table.loc["auc_macro", "before_value"])
                result["auc_after"] = float(table.loc["auc_macro", "after_value"])
    result["seconds"] = time.perf_counter() - start
    return result


def demo_selftrain(ctx) -> tuple[str, str]:
    """Stage 2 of the demo encoder from the stage-1 model of the pretraining step; downstream before/after."""
    stage1 = ctx.results.get("pretrain") or {}
    r = step_selftrain(ctx.out / "runs", work=ctx.work, cohort=ctx.cohort, stage1=stage1.get("checkpoint"),
                       seed=ctx.seed, before=ctx.results.get("classify"))
    ctx.results["selftrain"] = r
    text = (f"held-out cosine(student, target) {r['cosine_before']:.3f} -> {r['cosine_after']:.3f}; "
            f"patch probes k-NN {r['knn_before']:.2f} -> {r['knn_after']:.2f}, "
            f"linear {r['linear_before']:.2f} -> "
            f"{r['linear_after']:.2f}")
    if "auc_before" in r:
        text += f"; cancer-type test macro-AUC {r['auc_before']:.3f} -> {r['auc_after']:.3f}"
    return r["run"], text


# ---- zero-shot, few-shot, retrieval ----
def step_zero_few_shot(out: Path, stage1, manifest: Path, features: Path, reports: Path | None = None,
                       rna: Path | None = None, prompts: str | Path = DEMO_PROMPTS,
                       shots: Sequence[int] = DEMO_ZERO_FEW_SHOT["shots"],
                       runs: int = DEMO_ZERO_FEW_SHOT["runs"],
                       bootstrap: int = DEMO_ZERO_FEW_SHOT["bootstrap"],
                       heatmaps: int = DEMO_ZERO_FEW_SHOT["heatmaps"], seed: int = 0,
                       threads: int | None = 1) -> dict:
    """Zero-shot cancer type, few-shot curves and retrieval, each written under ``out`` (a runs folder).

    Args:
        out: Runs folder (``zeroshot/``, ``fewshot/``, ``retrieval/`` are created inside).
        stage1: The stage-1 checkpoint of the demo.
        manifest: ``manifests/diagnosis.csv`` of the synthetic cohort.
        features: Its patch features (the encoder stage 1 was trained on).
        reports: ``reports.json`` (slide↔report retrieval), or None.
        rna: RNA table (slide↔gene retrieval, when the model has a gene encoder), or None.
        prompts: Prompt file or packaged set.
        shots, runs: Few-shot k values and support draws per k.
        bootstrap: Resamples of the CIs.
        heatmaps: Zero-shot heatmaps drawn.
        seed: Seed of draws and bootstrap.
        threads: Torch intra-op threads meanwhile (None: leave as is).

    Returns:
        ``zero_shot`` (slide/patch balanced accuracy entries, chosen j, chance), ``few_shot`` (``{method: {k:
        median balanced accuracy}}``), ``retrieval`` (``{direction: {r5, chance}}``), the run folders,
        ``seconds`` and a one-line ``summary``.
    """
    from mstar.zeroshot.config import FewShotConfig, RetrievalConfig, ZeroShotConfig
    from mstar.zeroshot.few_shot import few_shot
    from mstar.zeroshot.loading import load_model
    from mstar.zeroshot.retrieve import retrieve
    from mstar.zeroshot.zero_shot import zero_shot

    start = time.perf_counter()
    common = dict(stage1=str(stage1), manifest=str(manifest), features=str(features), seed=seed, device="cpu",
                  out=str(out), name="demo")
    with torch_threads(threads):
        model, _ = load_model(stage1, device="cpu")
        zs = zero_shot(ZeroShotConfig(prompts=str(prompts), bootstrap=bootstrap, heatmaps=heatmaps, **common),
                       model=model, progress=False)
        test = zs["metrics"]["test"]
        fs = few_shot(FewShotConfig(prompts=str(prompts), shots=list(shots), runs=runs, **common),
                      model=model, progress=False)
        bacc = fs["summary"][fs["summary"]["metric"] == "balanced_accuracy"]
        curves = {m: {int(r["k"]): float(r["median"]) for _, r in g.iterrows()}
                  for m, g in bacc.groupby("method")}
        result = {"zero_shot": {"slide": test["slide/balanced_accuracy"],
                                "patch": test["patch/balanced_accuracy"], "chosen_j": zs["chosen_j"],
                                "chance": 1.0 / len(zs["classes"]), "run": zs["run"]},
                  "few_shot": curves, "few_shot_run": fs["run"], "retrieval": {}}
        use_rna = rna if rna and getattr(model, "gene_encoder", None) is not None else None
        use_reports = reports if model.text is not None else None
        if use_reports or use_rna:
            ret = retrieve(RetrievalConfig(reports=str(use_reports) if use_reports else None,
                                           rna=str(use_rna) if use_rna else None, bootstrap=bootstrap,
                                           **common),
                           model=model)
            entries = next(iter(ret["metrics"].values()))
            for d in sorted({k.split("/")[0] for k in entries}):
                result["retrieval"][d] = {"r5": entries[f"{d}/recall@5"]["value"],
                                          "chance": entries[f"{d}/recall@5"]["chance"]}
            result["retrieval_run"] = ret["run"]
    ks = sorted(next(iter(curves.values())))
    probe = curves.get("linear_probe") or next(iter(curves.values()))
    parts = [f"zero-shot bal. acc. {format_ci(result['zero_shot']['slide'], 2)} slide-level, "
             f"{result['zero_shot']['patch']['value']:.2f} patch top-{zs['chosen_j']} "
             f"(chance {result['zero_shot']['chance']:.2f})",
             f"few-shot linear probe k={ks[0]} {probe[ks[0]]:.2f} -> k={ks[-1]} {probe[ks[-1]]:.2f}"]
    for d in ("slide_to_report", "slide_to_gene"):
        if d in result["retrieval"]:
            r = result["retrieval"][d]
            parts.append(f"{d.replace('_to_', '->')} R@5 {r['r5']:.2f} (chance {r['chance']:.2f})")
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["summary"] = "; ".join(parts)
    return result


def demo_zero_few_shot(ctx) -> tuple[str, str]:
    """Zero-shot, few-shot and retrieval with the stage-1 model the pretraining step trained."""
    numbers = step_zero_few_shot(ctx.out / "runs", ctx.results["pretrain"]["checkpoint"],
                                 ctx.cohort / "manifests" / "diagnosis.csv", demo_features(ctx.work),
                                 reports=ctx.cohort / "reports.json",
                                 rna=ctx.cohort / "rna" / "expression.csv", seed=ctx.seed)
    ctx.results["zero_few_shot"] = numbers
    return numbers["zero_shot"]["run"], numbers["summary"]
