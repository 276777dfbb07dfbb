"""Markdown tables of ``benchmarks/generalise.py`` results: one column per profile found under ``--work``,
seed 0 [its 95 % bootstrap CI] · mean ± sd over the seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from generalise_report import report_rows, report_seeds

SHOTS = (1, 4, 16)  # few-shot k of the benchmark



ROWS = [  # (section, label, path into a seed's results, chance path or None)
    ("retrieval (held-out R@5)", "slide→report", "retrieval_pretrained.slide_to_report/recall@5", "chance"),
    ("retrieval (held-out R@5)", "report→slide", "retrieval_pretrained.report_to_slide/recall@5", "chance"),
    ("retrieval (held-out R@5)", "slide→RNA", "retrieval_pretrained.slide_to_gene/recall@5", "chance"),
    ("retrieval (held-out R@5)", "RNA→slide", "retrieval_pretrained.gene_to_slide/recall@5", "chance"),
    ("retrieval (held-out R@5)", "report→RNA", "retrieval_pretrained.report_to_gene/recall@5", "chance"),
    ("class probe (bacc)", "gene embedding", "gene_probe.embedding", None),
    ("class probe (bacc)", "raw expression", "gene_probe.raw_expression", None),
    ("class probe (bacc)", "report emb., with negated distractor", "report_probe.with_distractor", None),
    ("class probe (bacc)", "report emb., without", "report_probe.without_distractor", None),
    ("risk (Spearman)", "slide embedding", "risk_probe.slide_embedding", None),
    ("risk (Spearman)", "untrained slide embedding", "risk_probe.untrained_embedding", None),
    ("risk (Spearman)", "pooled patch features", "risk_probe.pooled_features", None),
    ("risk (Spearman)", "gene embedding", "risk_probe.gene_embedding", None),
    ("risk (Spearman)", "raw expression", "risk_probe.raw_expression", None),
    ("zero-shot (test bacc)", "slide", "zero_shot.slide/balanced_accuracy", "chance"),
    ("survival (test C-index)", "slide embedding", "survival.slide_embedding", None),
    ("survival (test C-index)", "untrained slide embedding", "survival.untrained_embedding", None),
    ("survival (test C-index)", "pooled patch features", "survival.pooled_features", None),
    ("low-label (AUC, 12 labels)", "pretrained − untrained", "low_label", None),
]


def _get(blob: dict, path: str):
    head, _, rest = path.partition(".")
    value = blob.get(head)
    return value if not rest or value is None else (value.get(rest) if isinstance(value, dict) else None)


def _cell(seeds: list[dict], path: str, chance: str | None) -> str:
    entries = [e for e in (_get(s, path) for s in seeds) if isinstance(e, dict) and "value" in e]
    if not entries:
        return "–"
    values = np.array([e["value"] for e in entries])
    first = entries[0]
    text = f"{first['value']:.3f}"
    if "ci_low" in first:
        text += f" [{first['ci_low']:.2f}, {first['ci_high']:.2f}]"
    if len(values) > 1:
        text += f" · {values.mean():.3f} ± {values.std(ddof=1):.3f}"
    if chance and chance in first:
        text += f" (chance {first['chance']:.3f})"
    return text


def tables(work: Path) -> str:
    """Markdown: one column per profile found under ``work``: seed 0 [its 95 % bootstrap CI] · mean ± sd over
    the seeds."""
    found = {p.parent.name: json.loads(p.read_text()) for p in sorted(work.glob("*/results.json"))}
    names = sorted(found, key=lambda n: (n != "before", n))
    seeds = {n: [v for k, v in found[n].items() if k.startswith("seed")] for n in names}
    lines = [f"| measure | {' | '.join(f'{n} ({len(seeds[n])} seeds)' for n in names)} |",
             "|---|" + "---|" * len(names)]
    section = None
    for sec, label, path, chance in ROWS:
        if sec != section:
            lines.append(f"| **{sec}** |" + " |" * len(names))
            section = sec
        lines.append(f"| {label} | " + " | ".join(_cell(seeds[n], path, chance) for n in names) + " |")
    lines.append("| **few-shot (test bacc, median of 5 draws)** |" + " |" * len(names))
    for key in [f"{m}/k{k}" for m in ("text_prototypes", "simpleshot", "linear_probe") for k in SHOTS]:
        cells = []
        for n in names:
            vals = [s["few_shot"][key]["median"] for s in seeds[n] if key in s.get("few_shot", {})]
            cells.append(f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")
                         if vals else "–")
        lines.append(f"| {key.replace('/', ', ')} | " + " | ".join(cells) + " |")
    lines += report_rows({n: list(report_seeds(found[n]).values()) for n in names}, names, _cell)
    return "\n".join(lines)
