"""The demo's zero-shot / few-shot / retrieval step on the synthetic cohort with the demo's stage-1 model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

DEMO_PROMPTS = "synthetic_cancer_type"


def _fmt(entry: dict) -> str:
    return f"{entry['value']:.2f} [{entry['ci_low']:.2f}, {entry['ci_high']:.2f}]"


def step_zero_few_shot(out: Path, checkpoint, manifest: Path, features: Path, reports: Path | None = None,
                       rna: Path | None = None, prompts: str | Path = DEMO_PROMPTS, shots: Sequence[int] = (1, 2, 4, 8),
                       runs: int = 5, bootstrap: int = 500, heatmaps: int = 2, seed: int = 0,
                       threads: int | None = 1) -> dict:
    """Zero-shot cancer type, few-shot curves and retrieval, each written under ``out``.

    Args:
        out: Runs folder (``zeroshot/``, ``fewshot/``, ``retrieval/`` are created inside).
        checkpoint: The stage-1 checkpoint (or model) of the demo.
        manifest: ``manifests/diagnosis.csv`` of the synthetic cohort.
        features: Its patch features (the encoder stage 1 was trained on).
        reports: ``reports.json`` (slide↔report retrieval), or None.
        rna: RNA table (slide↔gene retrieval, when the model has a gene encoder), or None.
        prompts: Prompt file or packaged set.
        shots: Few-shot k values.
        runs: Support draws per k.
        bootstrap: Resamples of the CIs.
        heatmaps: Zero-shot heatmaps drawn.
        seed: Seed of draws and bootstrap.
        threads: Torch intra-op threads meanwhile (1: tiny models run faster single-threaded on small,
            busy CPUs; None: leave as is).

    Returns:
        Key numbers: ``zero_shot`` (slide/patch balanced accuracy entries, chosen j, chance), ``few_shot``
        (``{method: {k: median balanced accuracy}}``), ``retrieval`` (``{direction: {r5, chance}}``),
        the run folders, ``seconds`` and a one-line ``summary``.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(out, checkpoint, manifest, features, reports, rna, prompts, shots, runs, bootstrap, heatmaps,
                    seed)
    finally:
        torch.set_num_threads(before)


def _run(out, checkpoint, manifest, features, reports, rna, prompts, shots, runs, bootstrap, heatmaps, seed) -> dict:
    from mstar.zeroshot.few_shot import few_shot
    from mstar.zeroshot.loading import load_model
    from mstar.zeroshot.retrieve import retrieve
    from mstar.zeroshot.zero_shot import zero_shot

    start = time.perf_counter()
    model, _ = load_model(checkpoint, device="cpu")
    zs = zero_shot(model, prompts, manifest, features, out=out, name="demo", bootstrap=bootstrap, seed=seed,
                   heatmaps=heatmaps, device="cpu", show_progress=False)
    test = zs["metrics"]["test"]
    fs = few_shot(model, prompts, manifest, features, shots=shots, runs=runs, out=out, name="demo", seed=seed,
                  device="cpu", show_progress=False)
    bacc = fs["summary"][fs["summary"]["metric"] == "balanced_accuracy"]
    curves = {m: {int(r["k"]): float(r["median"]) for _, r in g.iterrows()} for m, g in bacc.groupby("method")}
    result = {"zero_shot": {"slide": test["slide/balanced_accuracy"], "patch": test["patch/balanced_accuracy"],
                            "chosen_j": zs["chosen_j"], "chance": 1.0 / len(zs["classes"]), "run": zs["run"]},
              "few_shot": curves, "few_shot_run": fs["run"], "retrieval": {}}
    use_rna = rna if rna and getattr(model, "gene_encoder", None) is not None else None
    if reports or use_rna:
        ret = retrieve(model, manifest, features, reports=reports if model.text is not None else None, rna=use_rna,
                       out=out, name="demo", bootstrap=bootstrap, seed=seed, device="cpu")
        entries = next(iter(ret["metrics"].values()))
        for d in sorted({k.split("/")[0] for k in entries}):
            result["retrieval"][d] = {"r5": entries[f"{d}/recall@5"]["value"],
                                      "chance": entries[f"{d}/recall@5"]["chance"]}
        result["retrieval_run"] = ret["run"]
    ks = sorted(next(iter(curves.values())))
    probe = curves.get("linear_probe") or next(iter(curves.values()))
    parts = [f"zero-shot bal. acc. {_fmt(result['zero_shot']['slide'])} slide-level, "
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
