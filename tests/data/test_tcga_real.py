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


def test_stage1_on_a_real_slice_separates_two_projects(tcga, tmp_path):
    """Two projects, 40 patients each: reports + RNA without slides, a few epochs of the tiny model."""
    import torch

    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain

    omics, reports = tcga
    folder = tmp_path / "omics"
    folder.mkdir()
    for name in ("blca", "kirc"):
        (folder / f"tcga_{name}.csv.gz").symlink_to(omics / f"tcga_{name}.csv.gz")
    build_tcga_cohort(folder, None, tmp_path / "cohort", seed=0)
    manifest = pd.read_csv(tmp_path / "cohort" / "manifest.csv")
    limit = manifest["fold"].map({"train": 28, "val": 6, "test": 6})
    small = manifest[manifest.groupby(["label", "fold"]).cumcount() < limit]
    small.to_csv(tmp_path / "small.csv", index=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pretrain(Stage1Config(
            manifest=str(tmp_path / "small.csv"), reports=str(reports),
            rna=str(tmp_path / "cohort" / "rna.csv.gz"), out=str(tmp_path / "runs"), dim=32,
            gene_encoder="snn", gene_args={"hidden": [32]}, max_tokens=128, epochs=3, batch_size=32, lr=2e-3,
            warmup_fraction=0.0, bootstrap=100, heldout="val"), progress=False)
    finally:
        torch.set_num_threads(before)
    counts = result["meta"]["counts"]
    assert counts["train_slides"] == 56 and counts["report_prep"]["rows"] == 8087
    assert counts["reports"] >= 60 and counts["rna"] == 68  # all 56 train + 12 val patients have RNA
    val = result["metrics"]["val"]
    assert val["report_knn_accuracy"]["value"] >= 0.8  # bladder vs kidney reports: the text tells them apart
    log = pd.read_csv(f"{result['run']}/log.csv")
    assert log["train_report_gene"].iloc[-1] < log["train_report_gene"].iloc[0] - 0.5  # the pair is learnt
    assert val["report_to_gene/recall@1"]["chance"] == pytest.approx(1 / 12)  # 12 held-out RNA profiles
