"""The real TCGA tables beside the project (skipped when absent): cohort counts and report preparation."""

from __future__ import annotations

import pandas as pd
import pytest

from mstar.data.report_prep import prepare_reports
from mstar.data.reports import read_report_rows
from mstar.data.tcga import build_tcga_cohort

pytestmark = pytest.mark.slow  # reads ~8,000 real reports (~15 s)


@pytest.fixture(scope="module")
def tcga(shared_data):
    omics, reports = shared_data / "tcga_omics", shared_data / "tcga_reports" / "tcga_reports.csv.gz"
    if not (omics / "tcga_blca.csv.gz").exists() or not reports.exists():
        pytest.skip("the TCGA omics/report tables are absent")
    return omics, reports


def test_real_cohort_counts_two_cohorts(tcga, tmp_path):
    omics, reports = tcga
    folder = tmp_path / "omics"
    folder.mkdir()
    for name in ("blca", "kirc"):  # a slice of the ten cohorts, linked, never copied
        (folder / f"tcga_{name}.csv.gz").symlink_to(omics / f"tcga_{name}.csv.gz")
    s = build_tcga_cohort(folder, reports, tmp_path / "cohort", seed=0)
    for name in ("blca", "kirc"):
        table = pd.read_csv(omics / f"tcga_{name}.csv.gz", usecols=["case_id"])
        assert s["cohorts"][name.upper()]["patients"] == table["case_id"].nunique()
    assert s["cohorts"]["BLCA"]["report"] == 372 and s["cohorts"]["KIRC"]["report"] == 334
    manifest = pd.read_csv(tmp_path / "cohort" / "manifest.csv")
    assert manifest["case"].is_unique and set(manifest["fold"]) == {"train", "val", "test"}


def test_real_reports_prepare_to_one_clean_text_per_patient(tcga):
    _, reports = tcga
    rows = read_report_rows(reports)
    texts, counts = prepare_reports(rows)
    assert counts.rows == 8087 and counts.no_case == 886
    assert counts.patients == len(texts) == len({c for c, _ in rows if isinstance(c, str) and c})
    kept = [t for t in texts.values() if t]
    assert len(kept) > 6000
    joined = "\n".join(kept[:500])
    for artefact in ("--- Page", "UUID:", "Redacted"):
        assert artefact not in joined, artefact
    assert sum("carcinoma" in t.lower() for t in kept[:500]) > 250  # the medicine survives
