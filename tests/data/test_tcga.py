"""A stage-1 cohort from TCGA-style omics tables: patients, cohorts, a stratified split, the RNA table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mstar.data.tcga import build_tcga_cohort
from mstar.errors import MstarError


def _omics(folder, name, n, genes, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for k in range(1 + (i % 3 == 0)):  # every third patient has two slides
            row = {"case_id": f"TCGA-{name[:2].upper()}-{i:04d}",
                   "slide_id": f"TCGA-{name[:2].upper()}-{i:04d}-DX{k}.svs",
                   "survival_months": 10.0, "censorship": 0}
            row.update({f"{g}_rnaseq": float(rng.normal()) for g in genes})
            row.update({"TP53_mut": 1})
            rows.append(row)
    pd.DataFrame(rows).to_csv(folder / f"tcga_{name}.csv.gz", index=False)


def test_cohort_tables_manifest_split_and_rna(tmp_path):
    omics = tmp_path / "omics"
    omics.mkdir()
    _omics(omics, "blca", 20, ["A", "B"], 0)
    _omics(omics, "kirc", 30, ["B", "C"], 1)
    reports = tmp_path / "reports.csv"
    pd.DataFrame({"case_id": ["TCGA-BL-0000", "TCGA-KI-0001", "TCGA-XX-9999"],
                  "text": ["urothelial carcinoma", "clear cell", "other project"]}
                 ).to_csv(reports, index=False)
    s = build_tcga_cohort(omics, reports, tmp_path / "cohort", test_fraction=0.2, val_fraction=0.1, seed=3)
    manifest = pd.read_csv(tmp_path / "cohort" / "manifest.csv")
    assert len(manifest) == 50 and set(manifest["label"]) == {"BLCA", "KIRC"}
    assert manifest.groupby("label")["fold"].apply(lambda f: (f == "test").sum()).to_dict() == {"BLCA": 4,
                                                                                                 "KIRC": 6}
    assert manifest.set_index("case").loc["TCGA-BL-0000", "slide"] == "TCGA-BL-0000-DX0;TCGA-BL-0000-DX1"
    rna = pd.read_csv(tmp_path / "cohort" / "rna.csv.gz").set_index("case_id")
    assert list(rna.columns) == ["A_rnaseq", "B_rnaseq", "C_rnaseq"] and len(rna) == 50
    assert rna.loc["TCGA-BL-0003", "C_rnaseq"] != rna.loc["TCGA-BL-0003", "C_rnaseq"]  # BLCA lacks gene C
    assert s["cohorts"]["BLCA"] == {"patients": 20, "report": 1, "rna": 20, "both": 1, "train": 14, "val": 2,
                                    "test": 4}
    assert json.loads((tmp_path / "cohort" / "cohort.json").read_text()) == s
    build_tcga_cohort(omics, None, tmp_path / "again", seed=3)
    assert (pd.read_csv(tmp_path / "again" / "manifest.csv")["fold"] == manifest["fold"]).all()  # seeded
    pd.DataFrame({"case_id": ["X-1", "X-2"], "text": ["a report", "another"]}).to_csv(reports, index=False)
    with pytest.raises(MstarError, match=r"no report case id matches .* \(reports have X-1, X-2; omics TCGA"):
        build_tcga_cohort(omics, reports, tmp_path / "x")
    with pytest.raises(MstarError, match="no tcga_<cohort>.csv"):
        build_tcga_cohort(tmp_path / "cohort", None, tmp_path / "x")
