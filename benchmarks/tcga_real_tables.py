"""Markdown tables of ``benchmarks/tcga_real.py``'s ``results.json`` (the RESULTS.md section).

    python benchmarks/tcga_real_tables.py /tmp/mstar-tcga-real/results.json
"""

from __future__ import annotations

import json

import numpy as np


def ci(e: dict | None, digits: int = 3) -> str:
    if not e:
        return "n/a"
    return f"{e['value']:.{digits}f} [{e['ci_low']:.{digits}f}, {e['ci_high']:.{digits}f}]"


def seeds_cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _seeds(results: dict) -> list[str]:
    return [m for m in results["retrieval"] if m.startswith("seed")]


def retrieval_table(results: dict) -> list[str]:
    seeds, first = _seeds(results), _seeds(results)[0]
    lines = ["| direction | gallery | K | trained, seed 0 [95 % CI] | trained, 3 seeds mean ± sd | untrained "
             "[95 % CI] | chance |", "|---|---|---|---|---|---|---|"]
    r = results["retrieval"]
    for direction in ("report_to_gene", "gene_to_report"):
        for within, gallery in (("", "pan-cancer"), ("_within", "same project")):
            for k in (1, 5, 10):
                key = f"{direction}{within}/recall@{k}"
                if key not in r[first]:
                    continue
                arrow = direction.replace("_to_", " → ")
                lines.append(f"| {arrow} | {gallery} | {k} | {ci(r[first][key])} | "
                             f"{seeds_cell([r[s][key]['value'] for s in seeds])} | {ci(r['random'][key])} | "
                             f"{r[first][key]['chance']:.3f} |")
    return lines


def zero_shot_table(results: dict) -> list[str]:
    seeds, first = _seeds(results), _seeds(results)[0]
    z = results["zero_shot"]
    lines = ["| embeddings | metric | trained, seed 0 [95 % CI] | 3 seeds mean ± sd | untrained [95 % CI] | "
             "chance |", "|---|---|---|---|---|---|"]
    for modality in ("gene", "report"):
        for metric, chance in (("balanced_accuracy", None), ("auc_macro", 0.5)):
            vals = [z[s][modality][metric]["value"] for s in seeds]
            n_c = z[first][modality]["n_classes_present"]
            lines.append(f"| {'RNA' if modality == 'gene' else 'report'} | {metric} | "
                         f"{ci(z[first][modality][metric])} | {seeds_cell(vals)} | "
                         f"{ci(z['random'][modality][metric])} | {chance or 1 / n_c:.3f} |")
    skcm = [z[s]["gene"]["recall_per_class"].get("SKCM", float("nan")) for s in seeds]
    untrained = z["random"]["gene"]["recall_per_class"].get("SKCM", 0.0)
    lines += ["", f"SKCM (RNA, almost no reports in pretraining): zero-shot recall from RNA embeddings "
                  f"{seeds_cell(skcm)} over seeds (untrained {untrained:.3f}); "
                  f"test patients predicted SKCM, seed 0: {z[first]['gene']['predicted_skcm']}."]
    per = z[first]["gene"]["recall_per_class"]
    lines += ["", "Per-project recall, RNA zero-shot, seed 0: "
              + ", ".join(f"{c} {v:.2f}" for c, v in sorted(per.items()))]
    return lines


def few_shot_table(results: dict) -> list[str]:
    f = results["few_shot"]
    names = [k for k in f if k not in ("classes", "n_test", "chance")]
    lines = [f"| features | {' | '.join(f'k = {k}' for k in (1, 4, 16, 64))} |",
             "|---|" + "---|" * 4]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(ci(f[name][str(k)] if str(k) in f[name] else f[name][k])
                                                 for k in (1, 4, 16, 64)) + " |")
    first = f[names[0]]
    draws = (first["1"] if "1" in first else first[1])["draws"]
    lines.append(f"\nBalanced accuracy on {f['n_test']} test patients of {len(f['classes'])} projects "
                 f"(chance {f['chance']:.3f}); mean over {draws} support draws, CI: bootstrap over test "
                 "patients of that mean.")
    return lines


def _cell(r: dict | None) -> str:
    return f"{r['mean']:.3f} ± {r['sd']:.3f}" if r else "—"


def survival_table(results: dict) -> list[str]:
    from tcga_real import PUBLISHED_SNN

    per_seed = results["survival"]
    seeds = list(per_seed)
    s = per_seed[seeds[0]]
    inputs = ["raw RNA-seq", "RNA emb", "report emb", "RNA+report emb"]
    lines = [f"Cells: {seeds[0]} mean ± sd over the 5 folds · mean over the {len(seeds)} stage-1 seeds.", "",
             "| cohort | patients | " + " | ".join(inputs) + " | published SNN |", "|---|---|" + "---|" * 5]
    for cohort, r in s.items():
        cells = []
        for i in inputs:
            if i not in r:
                cells.append("—")
                continue
            over = np.mean([per_seed[t][cohort][i]["mean"] for t in seeds])
            cells.append(_cell(r[i]) + ("" if i == "raw RNA-seq" else f" · {over:.3f}"))
        pub = PUBLISHED_SNN.get(cohort)
        lines.append(f"| {cohort} | {r['patients']} | " + " | ".join(cells) + f" | {pub or '—'} |")
    lines += ["", f"| cohort | 25 % train: pretrained RNA emb ({seeds[0]}) | untrained RNA emb | difference "
                  f"[paired 95 % CI] | difference, {len(seeds)} seeds mean ± sd | seeds with CI > 0 |",
              "|---|---|---|---|---|---|"]
    for cohort, r in s.items():
        if "low_label" not in r:
            continue
        low = r["low_label"]
        diffs = [per_seed[t][cohort]["low_label"]["difference"] for t in seeds]
        above = sum(d["ci_low"] > 0 for d in diffs)
        lines.append(f"| {cohort} | {_cell(low['pretrained'])} | {_cell(low['random'])} | "
                     f"{ci(low['difference'])} | {seeds_cell([d['value'] for d in diffs])} | "
                     f"{above} of {len(seeds)} |")
    return lines


def accrual_table(results: dict) -> list[str]:
    per_seed = results["accrual"]
    seeds = list(per_seed)
    a = per_seed[seeds[0]]
    lines = [f"{seeds[0]}, with 95 % bootstrap CIs (paired for the differences):", "",
             "| test patients | measure | first (old 5) | continued (+ new 5) | joint (all 10) | "
             "continued − first | continued − joint | chance |", "|---|---|---|---|---|---|---|---|"]
    summary = [f"The differences over the {len(seeds)} stage-1 seeds (mean ± sd):", "",
               "| test patients | measure | continued − first | continued − joint |", "|---|---|---|---|"]
    for group in ("old", "new"):
        g = a[group]
        rows = [("report → RNA R@5", "report_to_gene_r5", g["n"], g["chance"])]
        rows += [(f"zero-shot bal. acc. ({m})", f"zero_shot_{m}", g[f"zero_shot_{m}"]["n"], 0.1)
                 for m in ("gene", "report") if f"zero_shot_{m}" in g]
        for label, key, n, chance in rows:
            e = g[key]
            lines.append(f"| {group} ({n}) | {label} | {ci(e['first'])} | {ci(e['continued'])} | "
                         f"{ci(e['joint'])} | {ci(e['continued-first'])} | {ci(e['continued-joint'])} | "
                         f"{chance:.3f} |")
            d1 = [per_seed[t][group][key]["continued-first"]["value"] for t in seeds]
            d2 = [per_seed[t][group][key]["continued-joint"]["value"] for t in seeds]
            summary.append(f"| {group} | {label} | {seeds_cell(d1)} | {seeds_cell(d2)} |")
    return lines + [""] + summary


def markdown(results: dict) -> str:
    parts = [["### Retrieval (test)"], retrieval_table(results), ["", "### Zero-shot project (test)"],
             zero_shot_table(results)]
    for key, title, fn in (("few_shot", "Few-shot linear probe (test)", few_shot_table),
                           ("survival", "Survival, MCAT folds (held-out C-index, mean ± sd over 5 folds)",
                            survival_table),
                           ("accrual", "New cases accrue", accrual_table)):
        if key in results:
            parts += [["", f"### {title}"], fn(results)]
    return "\n".join(line for part in parts for line in part)


def _seed_mean(block: dict, path: tuple) -> tuple[dict, list[float]]:
    seeds = [s for s in block if s.startswith("seed")]
    entries = []
    for s in seeds:
        e = block[s]
        for key in path:
            e = e[key]
        entries.append(e)
    return entries[0], [e["value"] for e in entries]


def compare_table(before: dict, after: dict) -> list[str]:
    """The headline figures of two benchmark runs side by side (seed 0 with CI · mean ± sd over seeds)."""
    lines = ["| figure | before: seed 0 [95 % CI] · seeds | after: seed 0 [95 % CI] · seeds | chance |",
             "|---|---|---|---|"]

    def row(label: str, block: str, path: tuple, chance: str = "") -> None:
        cells = []
        for res in (before, after):
            first, vals = _seed_mean(res[block], path)
            cells.append(f"{ci(first)} · {seeds_cell(vals)}")
            chance = chance or (f"{first['chance']:.3f}" if "chance" in first else "")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {chance} |")

    for direction, arrow in (("report_to_gene", "report → RNA"), ("gene_to_report", "RNA → report")):
        for within, gallery in (("", "pan-cancer"), ("_within", "same project")):
            row(f"{arrow} R@5, {gallery}", "retrieval", (f"{direction}{within}/recall@5",))
    for modality, name in (("gene", "RNA"), ("report", "report")):
        row(f"zero-shot project from {name} embeddings (bacc)", "zero_shot", (modality, "balanced_accuracy"),
            f"{1 / 9:.3f}")
    fb, fa = before.get("few_shot", {}), after.get("few_shot", {})
    name = next((k for k in fa if k not in ("classes", "n_test", "chance", "raw RNA-seq")), None)
    if name and name in fb:
        for k in ("1", "4", "16", "64"):
            raw = fa["raw RNA-seq"][k]["value"]
            lines.append(f"| few-shot k = {k}, stage-1 RNA emb ({name}; raw RNA {raw:.3f}) | "
                         f"{ci(fb[name][k])} | {ci(fa[name][k])} | {fa['chance']:.3f} |")
    if "survival" in before and "survival" in after:
        for inp in ("RNA emb", "report emb", "RNA+report emb"):
            cells = []
            for res in (before, after):
                per_seed = res["survival"]
                means = [np.mean([c[inp]["mean"] for c in per_seed[s].values() if inp in c])
                         for s in per_seed]
                cells.append(seeds_cell(means))
            lines.append(f"| survival C-index from {inp}, mean of the cohorts | {cells[0]} | {cells[1]} "
                         "| 0.5 |")
        cells = []
        for res in (before, after):
            per_seed = res["survival"]
            diffs = [c["low_label"]["difference"] for s in per_seed for c in per_seed[s].values()
                     if "low_label" in c]
            cells.append(f"mean {np.mean([d['value'] for d in diffs]):+.3f}; CI > 0 in "
                         f"{sum(d['ci_low'] > 0 for d in diffs)} of {len(diffs)} cohort-seeds")
        lines.append(f"| 25 % labels: pretrained − untrained RNA emb (C-index) | {cells[0]} | {cells[1]} "
                     "| 0 |")
    return lines


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Markdown tables of benchmarks/tcga_real.py results")
    ap.add_argument("results", help="results.json of a run")
    ap.add_argument("--before", help="another run's results.json: print the two side by side instead")
    args = ap.parse_args()
    after = json.loads(open(args.results).read())
    if args.before:
        print("\n".join(compare_table(json.loads(open(args.before).read()), after)))
    else:
        print(markdown(after))


if __name__ == "__main__":
    from _cli import run

    run(main)
