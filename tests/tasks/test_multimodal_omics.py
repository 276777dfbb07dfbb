"""Genomic inputs of multimodal survival: tables, signature matching, folds, train-only scaling, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mstar.data.cohort_tables import apply_folds, read_fold_dir, read_survival_cohort, read_wide_manifest
from mstar.data.omics import OmicsMatrix, OmicsScaler, match_signatures, omics_layout, read_omics
from mstar.errors import MstarError
from mstar.tasks.multimodal_inputs import MultimodalStore


@pytest.fixture()
def wide(tmp_path):
    """A TCGA-style wide table: case A has two slides (identical rows), B and C one each."""
    frame = pd.DataFrame({
        "Unnamed: 0": [0, 1, 2, 3], "case_id": ["A", "A", "B", "C"],
        "slide_id": ["A-DX1.svs", "A-DX2.svs", "B-DX1.svs", "C-DX1.svs"],
        "survival_months": [10.0, 10.0, 3.5, 40], "censorship": [0, 0, 1, 0], "age": [50, 50, 61, 70],
        "TP53_rnaseq": [1.0, 1.0, 2.0, 4.0], "TP53_cnv": [-1, -1, 0, 1],
        "KRAS_rnaseq": [0.5, 0.5, 0.1, np.nan], "EGFR_mut": [0, 0, 1, 0], "MYC_cnv": [2, 2, 0, 0],
        "ZZZ_rnaseq": [1, 1, 1, 1]})
    path = tmp_path / "tcga_x.csv.gz"
    frame.to_csv(path, index=False)
    sig = pd.DataFrame({"Tumor Suppressor Genes": ["TP53", "RB1", "PTEN"],
                        "Oncogenes": ["KRAS", "MYC", "TP53"], "Protein Kinases": ["EGFR", None, None]})
    sig.to_csv(tmp_path / "signatures.csv", index=False)
    return path


def test_wide_table_keeps_suffixed_columns_one_row_per_case(wide):
    table = read_omics(wide)
    assert list(table.values.index) == ["A", "B", "C"]
    assert sorted(table.values.columns) == ["EGFR_mut", "KRAS_rnaseq", "MYC_cnv", "TP53_cnv", "TP53_rnaseq",
                                            "ZZZ_rnaseq"]
    assert table.suffixes == ("_mut", "_cnv", "_rnaseq")
    assert table.values.loc["C", "TP53_rnaseq"] == 4.0 and np.isnan(table.values.loc["C", "KRAS_rnaseq"])
    only = read_omics(wide, modalities=["rnaseq"])
    assert sorted(only.values.columns) == ["KRAS_rnaseq", "TP53_rnaseq", "ZZZ_rnaseq"]


def test_signature_groups_match_every_modality_of_a_gene_and_report_counts(wide):
    match = match_signatures(read_omics(wide), wide.parent / "signatures.csv")
    assert match.names == ["Tumor Suppressor Genes", "Oncogenes", "Protein Kinases"]
    assert match.columns == [["TP53_cnv", "TP53_rnaseq"],
                             ["KRAS_rnaseq", "MYC_cnv", "TP53_cnv", "TP53_rnaseq"],
                             ["EGFR_mut"]]  # sorted by name, as MCAT
    assert [(r["genes_matched"], r["genes_listed"], r["columns"]) for r in match.summary()] == \
        [(1, 3, 2), (3, 3, 4), (1, 1, 1)]
    layout = omics_layout(read_omics(wide, modalities=["rnaseq", "cnv", "mut"]), "groups",
                          wide.parent / "signatures.csv")
    assert layout.sizes == [2, 4, 1] and len(layout.columns) == 7  # TP53 columns appear in two groups
    full = omics_layout(read_omics(wide), "full")
    assert full.sizes == [6] and full.mode == "full"


def test_a_group_without_any_gene_is_a_clear_error(wide):
    with pytest.raises(MstarError, match="'Protein Kinases' matches no column"):
        match_signatures(read_omics(wide, modalities=["rnaseq", "cnv"]), wide.parent / "signatures.csv")
    with pytest.raises(MstarError, match="need --signatures"):
        omics_layout(read_omics(wide), "groups", None)


def test_missing_modality_and_missing_table_are_clear_errors(wide, tmp_path):
    with pytest.raises(MstarError, match=r"no_mut.csv: no '\*_mut' columns; this table has rnaseq, cnv"):
        read_omics(_drop_mut(wide, tmp_path), modalities=["mut"])
    with pytest.raises(MstarError, match="does not exist"):
        read_omics(tmp_path / "absent.csv")


def _drop_mut(path, tmp_path):
    frame = pd.read_csv(path).drop(columns=["EGFR_mut"])
    out = tmp_path / "no_mut.csv"
    frame.to_csv(out, index=False)
    return out


def test_scaler_is_fitted_on_training_cases_only(wide):
    table = read_omics(wide, modalities=["rnaseq"])
    layout = omics_layout(table, "full")
    matrix = OmicsMatrix.build(table, layout, ["A", "B", "C"])
    store = MultimodalStore(None, matrix).fitted(["A", "B"])
    col = layout.columns.index("TP53_rnaseq")
    # train TP53: 1, 2 -> mean 1.5, population sd 0.5; C (4.0) is standardised with them, not with its own
    assert store.scaler.mean[col] == pytest.approx(1.5) and store.scaler.std[col] == pytest.approx(0.5)
    assert float(store.vector("C")[col]) == pytest.approx(5.0)
    kras, const = layout.columns.index("KRAS_rnaseq"), layout.columns.index("ZZZ_rnaseq")
    assert float(store.vector("C")[kras]) == 0.0  # missing value -> the training mean
    assert store.scaler.std[const] == 1.0 and float(store.vector("A")[const]) == 0.0  # constant column
    refit = MultimodalStore(None, matrix).fitted(["B", "C"])
    assert refit.scaler.mean[col] == pytest.approx(3.0)


def test_scaler_matches_scikit_learn_standard_scaler():
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(3, 2, size=(30, 5)).astype(np.float32)
    ours = OmicsScaler.fit(x[:20]).transform(x[20:])
    np.testing.assert_allclose(ours, StandardScaler().fit(x[:20]).transform(x[20:]), rtol=1e-5, atol=1e-5)


def test_cases_without_omics_are_listed(wide):
    table = read_omics(wide)
    with pytest.raises(MstarError, match="no omics for 1 case.*: D"):
        OmicsMatrix.build(table, omics_layout(table, "full"), ["A", "D"])


def test_per_case_rna_files_named_by_the_manifest(tmp_path):
    folder = tmp_path / "rna"
    folder.mkdir()
    pd.DataFrame({"Gene": ["TP53", "KRAS", "TP53"], "Value": [1.0, 2.0, 3.0]}).to_csv(folder / "p1.csv",
                                                                                      index=False)
    pd.DataFrame({"Gene": ["KRAS", "TP53"], "Value": [5.0, 6.0]}).to_csv(folder / "p2.csv", index=False)
    with pytest.warns(UserWarning, match=r"p1.csv: 1 duplicated gene symbols averaged \(TP53\)"):
        table = read_omics(folder, case_files={"case1": "p1.csv", "case2": "p2.csv"})
    assert table.values.loc["case1", "TP53"] == 2.0 and table.values.loc["case2", "KRAS"] == 5.0
    with pytest.raises(MstarError, match=r"no RNA file for 1 case\(s\): case3 \(p3.csv\)"):
        read_omics(folder, case_files={"case1": "p1.csv", "case3": "p3.csv"})
    pd.DataFrame({"gene_name": ["A"], "Value": [1]}).to_csv(folder / "bad.csv", index=False)
    with pytest.raises(MstarError, match="bad.csv: per-case RNA file needs columns Gene,Value"):
        read_omics(folder, case_files={"x": "bad.csv"})


def test_the_synthetic_cohort_rna_matches_its_signatures(tmp_path):
    from mstar.data.synthetic.rna import expression_table, signature_table
    from mstar.data.synthetic.truth import draw_cohort_truth

    expr = expression_table(draw_cohort_truth(10, 3, seed=0), seed=7)
    expr.reset_index().to_csv(tmp_path / "expression.csv", index=False)
    sig = signature_table(11)
    sig.to_csv(tmp_path / "signatures.csv", index=False)
    match = match_signatures(read_omics(tmp_path / "expression.csv"), tmp_path / "signatures.csv")
    listed = [len([g for g in sig[c] if g]) for c in sig.columns]
    assert [r["genes_matched"] for r in match.summary()] == listed  # every synthetic gene is measured
    assert sum(listed) == expr.shape[0]


def test_wide_manifest_and_mcat_folds(wide, tmp_path):
    manifest = read_wide_manifest(wide)
    t = manifest.table.set_index("case")
    assert (t.loc["A", "slides"] == ["A-DX1", "A-DX2"] and bool(t.loc["A", "event"])
            and not t.loc["B", "event"])
    folds = tmp_path / "splits"
    folds.mkdir()
    pd.DataFrame({"train": ["A", "B"], "val": ["C", None]}).to_csv(folds / "splits_0.csv")
    pd.DataFrame({"train": ["B", "C", "Z"], "val": ["A", None, None]}).to_csv(folds / "splits_1.csv")
    cv = apply_folds(manifest, read_fold_dir(folds))
    assert cv.split_names() == ["fold0", "fold1"]
    assert cv.table.set_index("case")["fold0"].to_dict() == {"A": "train", "B": "train", "C": "test"}
    assert cv.table.set_index("case")["fold1"].to_dict() == {"A": "test", "B": "train", "C": "train"}
    with pytest.raises(MstarError, match="pass --folds DIR"):
        read_survival_cohort(wide)


def test_fold_cases_outside_the_cohort_and_cohort_cases_outside_the_fold_are_named(wide, tmp_path, caplog):
    manifest = read_wide_manifest(wide)
    folds = tmp_path / "splits"
    folds.mkdir()
    pd.DataFrame({"train": ["A", "Z", "Y"], "val": ["B", None, None]}).to_csv(folds / "splits_0.csv")
    apply_folds(manifest, read_fold_dir(folds))
    said = [r.getMessage() for r in caplog.records]
    assert any("fold0: 2 case(s) of the fold are not in the cohort" in m and m.endswith("left out: Z, Y")
               for m in said), said
    assert any("fold0: 1 case(s) of the cohort are in none of the fold's lists and take no part in it: C" in m
               for m in said), said
    pd.DataFrame({"train": ["A"], "test": ["B"]}).to_csv(folds / "splits_2.csv")
    with pytest.raises(MstarError, match=r"splits_2.csv: missing column\(s\) \['val'\]"):
        read_fold_dir(folds)
