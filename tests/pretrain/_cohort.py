"""A tiny stage-1 cohort written straight in the features layout: bags, reports and RNA share planted facts.

Every case has a cancer type (3), a grade (1-3) and a TP53 status; the bag, the report text and the RNA
profile each carry them, so cross-modal retrieval can beat chance and cancer types can separate. Some cases
have no report, one has an empty report, and some have no RNA profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.tasks._bags import write_bag

TYPES = {"BRCA": "invasive ductal carcinoma of the breast", "LUAD": "adenocarcinoma of the lung",
         "KIRC": "clear cell renal cell carcinoma"}
GRADES = {1: "well differentiated (grade 1)", 2: "moderately differentiated (grade 2)",
          3: "poorly differentiated (grade 3)"}
MARKER = {0: "TP53 immunostain shows a wild-type pattern.",
          1: "TP53 immunostain shows an aberrant mutant pattern."}

# Small model settings shared by the stage-1 tests (seconds per run on 2 CPU cores).
TINY = dict(dim=32, vision_args={"heads": 2, "dim_head": 16, "num_landmarks": 8}, gene_encoder="performer",
            gene_args={"dim": 16, "depth": 1, "heads": 2, "dim_head": 8}, max_patches=24, batch_size=8,
            lr=2e-3, warmup_fraction=0.0, bootstrap=100, max_tokens=64)


def stage1_cohort(root: Path, n_cases: int = 48, dim: int = 16, n_genes: int = 30, seed: int = 0,
                  report_every: int = 9, rna_every: int = 7) -> dict[str, Path]:
    """Write ``features/``, ``manifest.csv``, ``reports.json`` and ``rna.csv`` (genes x cases) under ``root``.

    Case ``i`` has no report when ``i % report_every == 4`` (case 1 has an empty one) and no RNA when
    ``i % rna_every == 5``. Splits: ``i % 10`` in {7} val, {8, 9} test, else train.
    """
    rng = np.random.default_rng(seed)
    names = list(TYPES)
    d_type, d_grade, d_marker = rng.normal(size=(3, dim)), rng.normal(size=dim), rng.normal(size=dim)
    genes = [f"G{j:02d}" for j in range(n_genes)]
    rows, reports, rna = [], {}, {}
    for i in range(n_cases):
        k, grade, marker = i % 3, int(rng.integers(1, 4)), int(rng.integers(0, 2))
        n = int(rng.integers(24, 40))
        feats = rng.normal(size=(n, dim))
        feats[: n // 2] += 1.5 * d_type[k]
        feats[n // 2:] += 0.9 * (grade - 2) * d_grade + 1.2 * (2 * marker - 1) * d_marker
        slide, case = f"S{i:03d}", f"C{i:03d}"
        write_bag(root / "features" / f"{slide}.h5", rng.permutation(feats),
                  {"encoder": "timm:test", "encoder_sha": "c" * 64})  # as `mstar extract` records them
        split = "val" if i % 10 == 7 else "test" if i % 10 in (8, 9) else "train"
        rows.append({"case": case, "slide": slide, "label": names[k], "fold": split})
        if i % report_every != 4:
            parts = [f"{TYPES[names[k]].capitalize()}, {GRADES[grade]}.", MARKER[marker]]
            reports[slide] = "FINAL DIAGNOSIS: " + " ".join(parts if rng.random() < 0.5 else parts[::-1])
        if i % rna_every != 5:
            expr = rng.normal(5.0, 1.0, size=n_genes)
            expr[k * 5:(k + 1) * 5] += 2.5
            expr[15:20] += 1.5 * (2 * marker - 1)
            expr[20:25] += 0.8 * (grade - 2)
            rna[case] = expr
    reports["S001"] = "   "  # an empty report counts as missing
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    import json

    (root / "reports.json").write_text(json.dumps(reports, indent=1))
    table = pd.DataFrame(rna, index=pd.Index(genes, name="gene"))
    table.loc["G03", list(rna)[:4]] = np.nan  # a few unmeasured values
    table.reset_index().to_csv(root / "rna.csv", index=False)
    return {"manifest": manifest, "features": root / "features", "reports": root / "reports.json",
            "rna": root / "rna.csv"}
