"""Tiny feature cohorts with planted signal, written in the features-file layout (no slides needed)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def write_bag(path: Path, feats: np.ndarray, attrs: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats.astype(np.float32))
        coords = np.stack([np.arange(len(feats)) * 256, np.zeros(len(feats))], 1).astype(np.int64)
        f.create_dataset("coords", data=coords)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


def classification_cohort(root: Path, n_cases: int = 60, dim: int = 16, classes=("A", "B", "C"),
                          seed: int = 0, signal: float = 1.5, folds: int = 0) -> tuple[Path, Path]:
    """Bags of 20-60 patches; a class-specific direction is added to a third of each bag's patches."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(classes), dim))
    rows = []
    for i in range(n_cases):
        k = i % len(classes)
        n = int(rng.integers(20, 60))
        feats = rng.normal(size=(n, dim))
        hot = rng.random(n) < 0.33
        feats[hot] += signal * directions[k]
        write_bag(root / "features" / f"S{i:03d}.h5", feats)
        rows.append({"case": f"C{i:03d}", "slide": f"S{i:03d}", "label": classes[k]})
    table = pd.DataFrame(rows)
    if folds:
        order = rng.permutation(n_cases)
        for f in range(folds):
            test = set(order[f::folds])
            table[f"fold{f + 1}"] = ["test" if i in test else "train" for i in range(n_cases)]
    else:
        split = np.array(["train"] * n_cases, dtype=object)
        split[np.arange(n_cases) % 5 == 3] = "val"
        split[np.arange(n_cases) % 5 == 4] = "test"
        table["fold"] = split
    manifest = root / "manifest.csv"
    table.to_csv(manifest, index=False)
    return manifest, root / "features"


def survival_cohort(root: Path, n_cases: int = 80, dim: int = 16, seed: int = 0) -> tuple[Path, Path]:
    """Risk is the fraction of 'tumour' patches (a fixed direction); exponential times, ~35 % censored."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    rows = []
    for i in range(n_cases):
        frac = rng.uniform(0.05, 0.9)
        n = int(rng.integers(20, 60))
        feats = rng.normal(size=(n, dim))
        feats[rng.random(n) < frac] += 2.0 * direction
        t_event = rng.exponential(40 * np.exp(-3 * (frac - 0.5)))
        t_cens = rng.uniform(5, 120)
        write_bag(root / "features" / f"S{i:03d}.h5", feats)
        split = "train" if i % 5 < 3 else ("validation" if i % 5 == 3 else "test")
        rows.append({"Study": "X", "ID": f"P{i:03d}", "Event": round(min(t_event, t_cens), 2),
                     "Status": int(t_event <= t_cens), "WSI": f"S{i:03d}.pt", "split": split})
    manifest = root / "survival.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, root / "features"


def report_cohort(root: Path, n_cases: int, seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """A report-generation cohort in ``root``: class-carrying bags (``features/``), ``manifest.csv`` and
    ``reports.json`` from the synthetic report writer (every case with a report has one). Returns the
    manifest rows and the reports."""
    import json

    from mstar.data.synthetic.reports import write_report
    from mstar.data.synthetic.truth import draw_cohort_truth
    from tests.tasks.test_report_learning import class_bags

    cases = draw_cohort_truth(n_cases, 3, seed=seed)
    bags = class_bags(cases)
    rng = np.random.default_rng(1)
    reports, rows = {}, []
    for c in cases:
        sid = c.slides[0].slide_id
        write_bag(root / "features" / f"{sid}.h5", bags[c.case_id].numpy())
        rows.append({"case": c.case_id, "slide": sid, "label": c.cancer_type, "fold": c.split})
        if c.has_report:
            reports[sid] = write_report(c, rng)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    (root / "reports.json").write_text(json.dumps(reports))
    return rows, reports
