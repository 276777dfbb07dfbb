"""An independent synthetic thoracic-oncology cohort: slides as patch features, RNA, reports, survival.

This generator is written apart from ``mstar synth`` (``mstar.data.synthetic``), without reference to its
code, and uses its own classes, feature width, gene panel and report wording, so that a pipeline tuned on one
can be checked on the other. It needs numpy, pandas and h5py only::

    python benchmarks/indep_cohort.py OUT --cases 240 --seed 0

What is planted where
---------------------
Every case has a class among ``LUAD`` (lung adenocarcinoma), ``SCLC`` (small cell lung carcinoma), ``MESO``
(malignant pleural mesothelioma) and ``CARC`` (pulmonary carcinoid), drawn with prevalences
0.35/0.25/0.20/0.20, and a latent continuous ``risk`` ~ N(shift, 1) with a weak class shift (SCLC +0.3,
CARC -0.3). The risk drives the clinical numbers: tumour size (cm), positive lymph nodes, a
grade/differentiation level, mitoses, Ki-67 and lymphovascular invasion, and the survival hazard
(exp(0.8 risk + class offset)).

* Patch features (``features/<slide>.h5``: ``features`` (N, 96) float32, ``coords`` (N, 2) int64 on a 256 px
  grid; one slide per case, N in 60..300). Patches form a blob of tissue. Most are background tissue types
  (stroma, lymphocytes, necrosis, alveolar, blood, fat; each a fixed random mean, mixed in slide-specific
  proportions). A MINORITY (15-35 %) around a tumour focus carry the class prototype (a shared "tumour" mean
  plus a class direction plus a per-slide subtype shift); a separate ring of 8-18 % of patches around it (the
  "invasive front") carries a risk direction scaled by the case's risk. All patches of a slide share a
  stain/scanner offset and each has Gaussian noise. Mean pooling therefore sees class and risk diluted by
  the background (held-out logistic regression on mean-pooled features reaches ~0.9 balanced accuracy, a
  ridge ~0.8 Spearman with risk); attention can find the informative minority.
* RNA (``rna.csv``: genes x cases, first column ``gene``, symbols ``G00001``...; ~8 % of cases absent).
  log2(TPM+1)-like values: a varied per-gene baseline and spread, 40 up-regulated genes per class, 30 genes
  rising and 30 falling with risk, a per-case library-size shift, a per-gene batch effect (3 batches),
  noise, clipping at 0 and ~3 % empty cells. The signal lives in ~220 of 3,000 genes.
* Reports (``reports.json``: ``{slide_id: text}``, ~10 % of cases have none). Free text of 40-120 words: a
  varied header, a diagnosis with one of several synonyms per class, numbers that carry the risk (size,
  ``k of n`` lymph nodes, mitoses per 2 mm2, Ki-67), a grade/pattern phrase tied to risk, immunostains, 0-3
  boilerplate sentences and, in ~45 % of reports, one or two NEGATED mentions of ANOTHER class ("No
  component of small cell carcinoma is identified."). Note that the LUAD synonym "non-small cell carcinoma"
  contains "small cell carcinoma": keyword matching is deliberately not enough. Sentence order is shuffled.
* Tables: ``manifest.csv`` (case, slide, label, fold stratified 60/20/20), ``truth.csv`` (the latent values
  and what was planted), ``survival.csv`` (Study, ID, Event months, Status, WSI, split; ~30 % censored),
  ``prompts.json`` (zero-shot class synonyms and CLASSNAME templates) and ``cohort.json`` (settings, counts).

Differences from ``mstar synth``: other classes (thoracic, four of them, unbalanced), feature width 96,
3,000 made-up genes, bags whose class and risk signal sit in minorities of patches, negated distractor
classes and risk-carrying numbers in the reports, and an exponential survival model on one latent risk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from indep_reports import DIFFERENTIAL, SYNONYMS, TEMPLATES, case_report

GENERATOR = "indep_cohort"
VERSION = "1.0"

CLASSES = ("LUAD", "SCLC", "MESO", "CARC")
PREVALENCE = (0.35, 0.25, 0.20, 0.20)
RISK_SHIFT = {"LUAD": 0.0, "SCLC": 0.3, "MESO": 0.0, "CARC": -0.3}
HAZARD_OFFSET = {"LUAD": 0.0, "SCLC": 0.9, "MESO": 0.6, "CARC": -1.2}

TILE_PX = 256
BACKGROUND_TYPES = ("stroma", "lymphocytes", "necrosis", "alveolar", "blood", "fat")
BACKGROUND_SHARE = np.array([0.30, 0.18, 0.08, 0.24, 0.10, 0.10])

MISSING_REPORT_FRACTION = 0.10
MISSING_RNA_FRACTION = 0.08
DISTRACTOR_FRACTION = 0.45
MISSING_RNA_VALUE_FRACTION = 0.03
CENSORED_FRACTION = 0.30

def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def _stratified_folds(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """train/val/test per case, 60/20/20 within each class."""
    folds = np.empty(len(labels), dtype=object)
    for label in CLASSES:
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_train, n_val = round(0.6 * len(idx)), round(0.2 * len(idx))
        folds[idx[:n_train]] = "train"
        folds[idx[n_train:n_train + n_val]] = "val"
        folds[idx[n_train + n_val:]] = "test"
    return folds


def _cases(cases: int, rng: np.random.Generator) -> pd.DataFrame:
    """Class, risk and the clinical quantities that depend on the risk."""
    labels = rng.choice(np.array(CLASSES), size=cases, p=PREVALENCE)
    risk = rng.normal(size=cases) + np.array([RISK_SHIFT[c] for c in labels])
    tumour_cm = np.maximum(0.3, 0.8 + 4.0 * _sigmoid(1.3 * risk) + rng.normal(0, 0.45, cases)).round(1)
    examined = 4 + rng.poisson(8, cases)
    nodes = np.minimum(examined, rng.poisson(np.exp(0.9 * risk - 0.4)))
    grade = np.digitize(risk + rng.normal(0, 0.5, cases), [-0.55, 0.55])
    ids = [f"IND-{i + 1:04d}" for i in range(cases)]
    return pd.DataFrame({"case": ids, "slide": [f"{c}-S1" for c in ids], "label": labels, "risk": risk,
                         "tumour_cm": tumour_cm, "nodes_positive": nodes, "nodes_examined": examined,
                         "grade": grade})


# ----------------------------------------------------------------------------------------------- features
def _feature_bank(dim: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixed means and directions shared by all slides."""
    class_dirs = rng.normal(0, 1, (len(CLASSES), dim))
    # Neuroendocrine tumours (SCLC, CARC) share part of their direction: a realistic confusion.
    class_dirs[3] = 0.55 * class_dirs[1] + 0.835 * class_dirs[3]
    risk_dir = rng.normal(0, 1, dim)
    return {"background": rng.normal(0, 1.0, (len(BACKGROUND_TYPES), dim)),
            "tumour": rng.normal(0, 0.8, dim), "class": 0.6 * class_dirs,
            "front": rng.normal(0, 0.6, dim),
            "risk": 0.6 * np.sqrt(dim) * risk_dir / np.linalg.norm(risk_dir),
            "scanner": rng.normal(0, 0.25, (3, dim))}


def _tissue_cells(n: int, rng: np.random.Generator) -> np.ndarray:
    """n unique grid cells (row, col) forming an irregular blob."""
    side = int(np.ceil(np.sqrt(n * 2.2))) + 4
    rows, cols = np.divmod(np.arange(side * side), side)
    centre = (side - 1) / 2
    stretch = rng.uniform(0.7, 1.4)
    dist = np.hypot((rows - centre) * stretch, (cols - centre) / stretch) + rng.normal(0, 1.2, side * side)
    keep = np.argsort(dist, kind="stable")[:n]
    return np.stack([rows[keep], cols[keep]], axis=1)


def _slide(case_class: int, risk: float, dim: int, bank: dict[str, np.ndarray],
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, dim) float32, coords (N, 2) int64) of one slide."""
    n = int(rng.integers(60, 301))
    cells = _tissue_cells(n, rng)
    focus = cells[rng.integers(n)]
    order = np.argsort(np.hypot(*(cells - focus).T) + rng.normal(0, 0.7, n), kind="stable")
    n_tumour = max(1, round(rng.uniform(0.15, 0.35) * n))
    n_front = max(1, round(rng.uniform(0.08, 0.18) * n))
    tumour, front, rest = order[:n_tumour], order[n_tumour:n_tumour + n_front], order[n_tumour + n_front:]

    feats = np.empty((n, dim))
    share = rng.dirichlet(8 * BACKGROUND_SHARE)
    types = rng.choice(len(BACKGROUND_TYPES), size=len(rest), p=share)
    feats[rest] = bank["background"][types]
    subtype = rng.normal(0, 0.5, dim)
    feats[tumour] = bank["tumour"] + bank["class"][case_class] + subtype
    feats[front] = bank["front"] + risk * bank["risk"]
    stain = bank["scanner"][rng.integers(3)] + rng.normal(0, 0.3, dim)
    feats += stain + rng.normal(0, 1.0, (n, dim))
    coords = (cells[:, ::-1] * TILE_PX).astype(np.int64)  # (x, y) = (col, row) * tile
    return feats.astype(np.float32), coords


# ----------------------------------------------------------------------------------------------------- RNA
def _rna(table: pd.DataFrame, genes: int, rng: np.random.Generator) -> pd.DataFrame:
    """genes x cases log2(TPM+1)-like table with class and risk modules in a few genes."""
    n = len(table)
    kind = rng.choice(3, size=genes, p=[0.3, 0.5, 0.2])
    base = np.select([kind == 0, kind == 1], [rng.uniform(0, 1.5, genes), rng.normal(4, 1.5, genes)],
                     rng.normal(8, 1.5, genes))
    base = np.maximum(base, 0.05)
    spread = np.exp(rng.normal(np.log(0.6), 0.35, genes))
    perm = rng.permutation(genes)
    per_class, per_risk = min(40, genes // 10), min(30, genes // 10)  # smaller modules in tiny panels
    values = base[:, None] + spread[:, None] * rng.normal(0, 1, (genes, n))
    class_idx = np.array([CLASSES.index(c) for c in table["label"]])
    for k in range(len(CLASSES)):
        module = perm[k * per_class:(k + 1) * per_class]
        effect = spread[module] * rng.uniform(0.8, 1.8, per_class)
        values[np.ix_(module, np.flatnonzero(class_idx == k))] += effect[:, None]
    start = len(CLASSES) * per_class
    up, down = perm[start:start + per_risk], perm[start + per_risk:start + 2 * per_risk]
    risk = table["risk"].to_numpy()
    values[up] += (spread[up] * rng.uniform(0.25, 0.6, per_risk))[:, None] * risk[None, :]
    values[down] -= (spread[down] * rng.uniform(0.25, 0.6, per_risk))[:, None] * risk[None, :]
    values += rng.normal(0, 0.3, n)[None, :]  # library size
    batch = rng.integers(3, size=n)
    values += rng.normal(0, 0.25, (genes, 3))[:, batch]
    values = np.maximum(values, 0.0).round(3)
    values[rng.random(values.shape) < MISSING_RNA_VALUE_FRACTION] = np.nan
    frame = pd.DataFrame(values, columns=table["case"].tolist())
    frame.insert(0, "gene", [f"G{i + 1:05d}" for i in range(genes)])
    return frame


# ------------------------------------------------------------------------------------------------ survival
def _survival(table: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(months, status) from an exponential model; independent censoring tuned to ~30 %."""
    hazard = 0.02 * np.exp(0.8 * table["risk"].to_numpy() + table["label"].map(HAZARD_OFFSET).to_numpy())
    event = rng.exponential(1.0, len(table)) / hazard
    unit = rng.exponential(1.0, len(table))
    follow_up = 120.0

    def censored(rate: float) -> float:
        return float(np.mean(np.minimum(unit / rate, follow_up) < event))

    lo, hi = 1e-6, 10.0
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if censored(mid) < CENSORED_FRACTION else (lo, mid)
    cutoff = np.minimum(unit / hi, follow_up)
    status = (event <= cutoff).astype(int)
    months = np.maximum(np.minimum(event, cutoff), 0.1).round(2)
    return months, status


# ------------------------------------------------------------------------------------------------- cohort
def make_cohort(out: Path, cases: int = 240, seed: int = 0, feature_dim: int = 96, genes: int = 3000) -> dict:
    """Write the cohort under ``out`` (created if needed; its files are overwritten, stale slides removed).

    Deterministic given ``seed``: each modality draws from its own child stream, so changing ``genes``
    leaves the features and reports unchanged. Returns the counts written to ``cohort.json``.
    """
    if cases < len(CLASSES) * 5:
        raise ValueError(f"need at least {len(CLASSES) * 5} cases, got {cases}")
    if genes < 10 or feature_dim < 2:
        raise ValueError(f"need at least 10 genes and 2 feature dimensions, got {genes} and {feature_dim}")
    out = Path(out)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_case, rng_feat, rng_rna, rng_report, rng_surv, rng_fold = streams

    table = _cases(cases, rng_case)
    table["fold"] = _stratified_folds(table["label"].to_numpy(), rng_fold)

    (out / "features").mkdir(parents=True, exist_ok=True)
    current = {f"{s}.h5" for s in table["slide"]}
    for stale in sorted((out / "features").glob("IND-*-S1.h5")):
        if stale.name not in current:
            stale.unlink()  # left by an earlier, larger cohort in the same folder
    bank = _feature_bank(feature_dim, rng_feat)
    patches = []
    for slide, label, risk in zip(table["slide"], table["label"], table["risk"]):
        feats, coords = _slide(CLASSES.index(label), float(risk), feature_dim, bank, rng_feat)
        patches.append(len(feats))
        with h5py.File(out / "features" / f"{slide}.h5", "w") as handle:
            handle.create_dataset("features", data=feats)
            handle.create_dataset("coords", data=coords)

    n_no_rna = round(MISSING_RNA_FRACTION * cases)
    has_rna = np.ones(cases, dtype=bool)
    has_rna[rng_rna.choice(cases, n_no_rna, replace=False)] = False
    _rna(table[has_rna], genes, rng_rna).to_csv(out / "rna.csv", index=False, na_rep="")

    has_report = np.ones(cases, dtype=bool)
    has_report[rng_report.choice(cases, round(MISSING_REPORT_FRACTION * cases), replace=False)] = False
    with_report = np.flatnonzero(has_report)
    chosen = rng_report.choice(with_report, round(DISTRACTOR_FRACTION * len(with_report)), replace=False)
    distractors: list[list[str]] = [[] for _ in range(cases)]
    for i in sorted(chosen):
        weights = DIFFERENTIAL[table["label"].iat[i]]
        count = 2 if rng_report.random() < 0.3 else 1
        others = rng_report.choice(list(weights), count, replace=False, p=list(weights.values()))
        distractors[i] = [str(o) for o in others]
    reports = {table["slide"].iat[i]: case_report(table.iloc[i], distractors[i], rng_report)
               for i in with_report}
    text = json.dumps(reports, indent=1, ensure_ascii=False) + "\n"
    (out / "reports.json").write_text(text, encoding="utf-8")

    table[["case", "slide", "label", "fold"]].to_csv(out / "manifest.csv", index=False)
    truth = table[["case", "slide", "label"]].assign(
        risk=table["risk"].round(4), tumour_cm=table["tumour_cm"], nodes_positive=table["nodes_positive"],
        has_report=has_report.astype(int), has_rna=has_rna.astype(int),
        has_distractor=[int(bool(d)) for d in distractors],
        distractor_classes=[";".join(d) for d in distractors])
    truth.to_csv(out / "truth.csv", index=False)

    months, status = _survival(table, rng_surv)
    survival = pd.DataFrame({"Study": "IND-" + table["label"], "ID": table["case"], "Event": months,
                             "Status": status, "WSI": table["slide"] + ".pt",
                             "split": table["fold"].replace({"val": "validation"})})
    survival.to_csv(out / "survival.csv", index=False)

    prompts = {"0": {"classnames": {c: SYNONYMS[c] for c in CLASSES}, "templates": TEMPLATES}}
    (out / "prompts.json").write_text(json.dumps(prompts, indent=1) + "\n", encoding="utf-8")

    summary = {
        "generator": GENERATOR, "version": VERSION, "seed": seed, "cases": cases,
        "classes": {c: int((table["label"] == c).sum()) for c in CLASSES},
        "folds": {f: int((table["fold"] == f).sum()) for f in ("train", "val", "test")},
        "feature_dim": feature_dim, "genes": genes, "tile_px": TILE_PX,
        "patches": {"total": int(sum(patches)), "min": int(min(patches)), "max": int(max(patches))},
        "reports": int(has_report.sum()), "rna_cases": int(has_rna.sum()),
        "distractor_reports": int(len(chosen)), "censored": int((status == 0).sum()),
        "fractions": {"missing_reports": round(1 - has_report.mean(), 4),
                      "missing_rna": round(1 - has_rna.mean(), 4),
                      "distractors": round(len(chosen) / max(1, len(with_report)), 4),
                      "censored": round(float((status == 0).mean()), 4)},
    }
    (out / "cohort.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line: ``indep_cohort.py OUT [--cases N] [--seed S] [--feature-dim D] [--genes G]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (must be new or empty unless --overwrite)")
    parser.add_argument("--cases", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-dim", type=int, default=96)
    parser.add_argument("--genes", type=int, default=3000)
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())) and not args.overwrite:
        print(f"error: OUT {args.out} exists and is not empty; choose a new folder (or --overwrite)",
              file=sys.stderr)
        return 2
    start = time.perf_counter()
    s = make_cohort(args.out, cases=args.cases, seed=args.seed, feature_dim=args.feature_dim,
                    genes=args.genes)
    classes = ", ".join(f"{c} {n}" for c, n in s["classes"].items())
    print(f"{s['cases']} cases ({classes}); {s['patches']['total']} patches x {s['feature_dim']}; "
          f"RNA {s['rna_cases']} cases x {s['genes']} genes; {s['reports']} reports "
          f"({s['distractor_reports']} with distractors); {s['censored']} censored; "
          f"{time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError) as exc:  # as benchmarks/_cli.py's wrapper does, without importing mstar
        sys.exit("error: " + " ".join(str(exc).split()))
