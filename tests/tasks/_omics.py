"""A tiny multimodal survival cohort with complementary signal: risk = a + b, slides show a, RNA shows b.

The ``mstar synth`` cohort has the same structure (each modality sees its own half of the residual risk), but
its signal sits in rendered morphology, so at the sizes a unit test can afford (~150 cases) the gap between
fusion and the better single modality (~0.02-0.04 C-index) is within the run-to-run noise
(``benchmarks/multimodal_synth.py``, RESULTS.md). Here the signal is planted directly in the features, strong
enough for "fusion beats both" to be asserted on 200 cases in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.tasks._bags import write_bag

GROUPS = ("Tumor Suppressor Genes", "Oncogenes", "Protein Kinases", "Cell Differentiation Markers",
          "Transcription Factors", "Cytokines and Growth Factors")


def complementary_cohort(root: Path, n_cases: int = 200, dim: int = 16, genes_per_group: int = 4,
                         seed: int = 0) -> dict[str, Path]:
    """Bags (``features/<slide>.h5``), per-case RNA files (``rna/<case>.csv``), ``signatures.csv`` and the
    upstream multimodal manifest ``multimodal.csv`` (split 50/20/30 % train/val/test).

    Slides: a fraction ``sigmoid(1.5 a)`` of each bag's patches carries a fixed direction. RNA: the genes of
    the "Oncogenes" group are ``b`` plus noise, the others noise. Times: exponential with hazard
    ``exp(a + b)``.
    """
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    genes = [[f"G{g}_{k}" for k in range(genes_per_group)] for g in range(len(GROUPS))]
    a, b = rng.normal(size=n_cases), rng.normal(size=n_cases)
    rows = []
    (root / "rna").mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        n = int(rng.integers(20, 40))
        feats = rng.normal(size=(n, dim))
        feats[rng.random(n) < 1 / (1 + np.exp(-1.5 * a[i]))] += 1.5 * direction
        write_bag(root / "features" / f"S{i:03d}.h5", feats)
        values = rng.normal(size=(len(GROUPS), genes_per_group))
        values[1] += 1.5 * b[i]
        pd.DataFrame({"Gene": [g for grp in genes for g in grp], "Value": values.ravel().round(4)}).to_csv(
            root / "rna" / f"P{i:03d}.csv", index=False)
        t_event = rng.exponential(30 * np.exp(-(a[i] + b[i])))
        t_cens = rng.uniform(10, 150)
        split = ("train", "train", "train", "train", "train", "val", "val", "test", "test", "test")[i % 10]
        rows.append({"Study": "X", "ID": f"P{i:03d}", "Event": round(min(t_event, t_cens), 2),
                     "Status": int(t_event <= t_cens), "WSI": f"S{i:03d}.pt", "RNA": f"P{i:03d}.csv",
                     "split": split})
    pd.DataFrame(rows).to_csv(root / "multimodal.csv", index=False)
    pd.DataFrame({name: grp for name, grp in zip(GROUPS, genes)}).to_csv(root / "signatures.csv", index=False)
    return {"manifest": root / "multimodal.csv", "features": root / "features", "rna": root / "rna",
            "signatures": root / "signatures.csv"}
