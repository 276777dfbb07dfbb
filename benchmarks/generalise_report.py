"""Report generation for ``benchmarks/generalise.py``: the demo's generator on a cohort, BLEU-4 against the
most-common-report baseline (paired bootstrap CI) and the cancer type stated, for the consensus the profile
uses (stage-1 neighbours in ``after``), the pooled-feature consensus and the generator alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def report_seeds(results: dict) -> dict:
    """``{seed<k>: report figures}`` (a file of an earlier version held seed 0's figures directly)."""
    report = results.get("report", {})
    return {"seed0": report} if "bleu" in report else dict(report)


def unk_fraction(texts: pd.Series) -> float:
    """Fraction of reports with an unknown token: ``<unk>`` as decoded, or the bare word "unk" (glued forms
    such as "unkmm3" or "unk1" included, never a word such as "unknown") it became in the cleaned text runs
    of an earlier version wrote."""
    legacy = r"(?:^|\s)unk(?=$|\s|[\d.]|(?:cm2?|mm[23]?|um2?|µm|nm|cm3|g|mg|kg|ml|hpf|x)(?:\s|$))"
    return float(texts.str.contains(r"<unk>|" + legacy, regex=True).mean())  # not "unknown"


def report_generation(paths: dict, work: Path, profile: dict, seed: int) -> dict:
    """``mstar train report`` with the demo's settings; BLEU-4 vs the most-common-report baseline.

    The "after" profile finds the consensus neighbours with the stage-1 model of the same seed
    (``neighbour_embeddings`` = that seed's ``mstar embed`` file, as the demo does); the pooled-feature
    consensus (the earlier default) and the generator alone are scored on the same generated reports."""
    from mstar.demo.settings import DEMO_REPORT
    from mstar.eval.clinical import extract_cancer_type, load_classes
    from mstar.eval.text_metrics import paired_bleu_difference
    from mstar.models.report.vocab import clean_report
    from mstar.tasks.report_config import ReportConfig
    from mstar.tasks.report_task import _load, train_report

    extra = dict(profile["report"])
    max_len = extra.pop("max_len", None)  # before issue 17 the demo fixed 64 tokens
    neighbours = extra.pop("neighbours", "pooled")
    model_args = {**DEMO_REPORT["model_args"], **extra.pop("model_args", {}),
                  **({"max_len": max_len} if max_len else {})}
    h5 = None
    if neighbours == "stage1":
        h5 = work / "embed" / f"embed-pretrained-s{seed}" / "embeddings.h5"
        if not h5.is_file():
            raise SystemExit(f"{h5}: run stage-1 seed {seed} first (--seeds {seed})")
    cfg = ReportConfig(manifest=str(paths["manifest"]), features=str(paths["features"]),
                       reports=str(paths["reports"]), out=str(work),
                       name=f"report-{'nn-' if h5 else ''}s{seed}", seed=seed, meteor=False,
                       classes=str(paths["prompts"]), neighbour_embeddings=str(h5) if h5 else None,
                       **{**DEMO_REPORT, **extra, "model_args": model_args})
    res = train_report(cfg)
    pred = pd.read_csv(Path(res["run"]) / "predictions.csv")
    pred = pred[pred["split"] == "test"].fillna("")
    keys = pred["slide"].tolist()
    refs, base = dict(zip(keys, pred["reference"])), dict(zip(keys, pred["baseline"]))
    # scored as the run scores them: cleaned (predictions.csv shows the generator's text as decoded)
    variants = {"bleu": {k: clean_report(t) for k, t in zip(keys, pred["generated"])}}
    if "generator" in pred:  # the generator before the neighbour-consensus re-ranking
        variants["bleu_generator"] = {k: clean_report(t) for k, t in zip(keys, pred["generator"])}
    features, split_of, _, label, _ = _load(cfg)
    if h5 is not None:
        variants["bleu_pooled"] = _pooled_consensus(cfg, features, split_of, variants["bleu_generator"])
    out = {name: paired_bleu_difference(texts, base, refs, seed=seed) for name, texts in variants.items()}
    classes = load_classes(cfg.classes)
    for name, texts in variants.items():  # cancer type stated correctly, per variant
        out[f"type_{name}"] = float(np.mean([extract_cancer_type(t, classes) == label[k]
                                             for k, t in texts.items()]))
    test = res.get("test", {})
    return {**out, "unk_fraction": unk_fraction(pred["generated"]),
            "unk_fraction_generator": unk_fraction(pred["generator"]) if "generator" in pred else None,
            "neighbours": res.get("consensus", {}).get("space", "pooled"),
            "cancer_type_accuracy": test.get("cancer_type_accuracy"),
            "baseline_cancer_type_accuracy": res.get("test_baseline", {}).get("cancer_type_accuracy")}


def _pooled_consensus(cfg, features: dict, split_of: dict, generator: dict[str, str]) -> dict[str, str]:
    """The generator's test reports re-ranked by pooled-feature neighbours (the rule before stage-1
    neighbours), for the side-by-side figure."""
    from mstar.data.reports import read_reports
    from mstar.models.report.consensus import rerank_reports
    from mstar.tasks.report_task import neighbour_bank
    from mstar.tasks.report_train import build_items

    reports = read_reports(cfg.reports)
    train = build_items(features, reports, [s for s, x in split_of.items() if x == "train"])[0]
    bank = neighbour_bank(train)
    return rerank_reports(generator, bank.queries({k: features[k] for k in generator}), bank, cfg.consensus_k)


def report_rows(reports: dict[str, list[dict]], names: list[str], cell) -> list[str]:
    """Markdown rows of the report-generation figures, one column per profile (``cell(seeds, key, None)``
    formats one entry: seed 0 [CI] · mean ± sd)."""
    if not any(reports.values()):
        return []
    lines = ["| **report generation (test)** |" + " |" * len(names)]
    for label, key in (("BLEU-4 generated", "bleu4_generated"), ("BLEU-4 most common report",
                                                                 "bleu4_baseline"),
                       ("difference (paired)", "difference")):
        lines.append(f"| {label} | " + " | ".join(
            cell([r["bleu"] for r in reports[n]], key, None) for n in names) + " |")
    for variant, what in (("bleu_pooled", "pooled-feature consensus"), ("bleu_generator", "generator alone")):
        lines.append(f"| difference, {what} (paired) | " + " | ".join(
            cell([r[variant] for r in reports[n] if variant in r], "difference", None)
            for n in names) + " |")
    for label, key in (("reports with `<unk>`", "unk_fraction"),
                       ("... by the generator alone", "unk_fraction_generator"),
                       ("cancer type stated correctly", "cancer_type_accuracy"),
                       ("... pooled-feature consensus", "type_bleu_pooled"),
                       ("... generator alone", "type_bleu_generator"),
                       ("... by the baseline", "baseline_cancer_type_accuracy")):
        cells = []
        for n in names:
            vals = [r[key] for r in reports[n] if r.get(key) is not None]
            sd = f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else ""
            cells.append(f"{np.mean(vals):.3f}{sd}" if vals else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
