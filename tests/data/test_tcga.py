"""A stage-1 cohort from TCGA-style omics tables: patients, cohorts, a stratified split, the RNA table."""

from __future__ import annotations

import json
import re

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
    # one project: its patients keep the folds the whole cohort gives them, and only its genes
    one = build_tcga_cohort(omics, None, tmp_path / "kirc", seed=3, projects=["kirc"])
    kirc = pd.read_csv(tmp_path / "kirc" / "manifest.csv")
    assert set(kirc["label"]) == {"KIRC"} and one["projects"] == ["KIRC"] and list(one["cohorts"]) == ["KIRC"]
    pd.testing.assert_frame_equal(kirc, manifest[manifest["label"] == "KIRC"].reset_index(drop=True))
    assert list(pd.read_csv(tmp_path / "kirc" / "rna.csv.gz").columns) == ["case_id", "B_rnaseq", "C_rnaseq"]
    with pytest.raises(MstarError, match=r"--projects LUAD: no tcga_<cohort> table for them .* \(it has "
                                         r"BLCA, KIRC\)"):
        build_tcga_cohort(omics, None, tmp_path / "x", projects=["LUAD", "KIRC"])
    pd.DataFrame({"case_id": ["X-1", "X-2"], "text": ["a report", "another"]}).to_csv(reports, index=False)
    with pytest.raises(MstarError, match=r"no report case id matches .* \(reports have X-1, X-2; omics TCGA"):
        build_tcga_cohort(omics, reports, tmp_path / "x")
    with pytest.raises(MstarError, match="no tcga_<cohort>.csv"):
        build_tcga_cohort(tmp_path / "cohort", None, tmp_path / "x")


def test_a_folder_of_other_tcga_tables_is_refused_naming_the_missing_columns(tmp_path):
    folder = tmp_path / "tcga_reports"  # the reports folder passed as --omics by mistake
    folder.mkdir()
    table = folder / "tcga_reports.csv.gz"
    pd.DataFrame({"case_id": ["TCGA-AA-0001"], "project": ["BRCA"], "source": ["x"], "report_key": ["k"],
                  "n_chars": [12], "text": ["a report"]}).to_csv(table, index=False)
    refused = (rf"^{re.escape(str(table))}: not a PORPOISE/MCAT omics table \(needs case_id and .*; has "
               r"case_id, project, source, .*--omics takes")
    with pytest.raises(MstarError, match=refused):
        build_tcga_cohort(folder, None, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.csv").exists()
    genes_only = tmp_path / "genes_only"  # case_id and genes, no slide ids: patients without slides
    genes_only.mkdir()
    _omics(genes_only, "brca", 3, ["A", "B"], 0)
    brca = genes_only / "tcga_brca.csv.gz"
    pd.read_csv(brca).drop(columns=["slide_id"]).to_csv(brca, index=False)
    s = build_tcga_cohort(genes_only, None, tmp_path / "out2")
    assert (s["cohorts"]["BRCA"]["patients"], s["cohorts"]["BRCA"]["rna"]) == (3, 3)
    no_rna = tmp_path / "no_rna"  # as UCEC's table: mutations and CNV only; its patients have no RNA
    no_rna.mkdir()
    pd.DataFrame({"case_id": ["U-1", "U-2"], "slide_id": ["U-1-DX1.svs", "U-2-DX1.svs"],
                  "survival_months": [3.0, 4.0], "censorship": [0, 1], "TP53_mut": [1, 0]}
                 ).to_csv(no_rna / "tcga_ucec.csv", index=False)
    _omics(no_rna, "blca", 4, ["A"], 0)
    s = build_tcga_cohort(no_rna, None, tmp_path / "out")
    assert (s["cohorts"]["UCEC"]["patients"], s["cohorts"]["UCEC"]["rna"]) == (2, 0)
    assert (s["cohorts"]["BLCA"]["patients"], s["cohorts"]["BLCA"]["rna"]) == (4, 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tcga_kirc.csv").write_bytes(b"")
    with pytest.raises(MstarError, match=r"tcga_kirc.csv: the omics table is empty; it should hold one row "
                                         "per slide: case_id, slide_id"):
        build_tcga_cohort(empty, None, tmp_path / "out")


def test_the_real_reports_folder_is_not_an_omics_folder(shared_data, tmp_path):
    reports = shared_data / "tcga_reports"
    if not (reports / "tcga_reports.csv.gz").exists():
        pytest.skip("the TCGA reports table is absent")
    with pytest.raises(MstarError, match="tcga_reports.csv.gz: not a PORPOISE/MCAT omics table"):
        build_tcga_cohort(reports, None, tmp_path / "out")
