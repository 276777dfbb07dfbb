"""RNA tables: every layout round-trips to the same cases x genes frame; gene matching; MCAT signatures."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

from mstar.data.rna import match_genes, read_rna_table, read_signatures
from mstar.data.synthetic.rna import expression_table, signature_table
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.errors import MstarError


@pytest.fixture(scope="module")
def genes_by_cases() -> pd.DataFrame:
    """The synthetic genes x cases table (as the cohort writes it to rna/expression.csv)."""
    return expression_table(draw_cohort_truth(12, 3, seed=1), seed=2)


@pytest.fixture(scope="module")
def expected(genes_by_cases) -> pd.DataFrame:
    return genes_by_cases.T.astype(np.float32)


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got.index.name == "case_id"
    assert list(got.index) == list(want.index)
    assert list(got.columns) == list(want.columns)
    assert (got.dtypes == np.float32).all()
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


@pytest.mark.parametrize("name,sep", [("expression.csv", ","), ("expression.tsv", "\t"),
                                      ("expression.txt.gz", "\t")])
def test_genes_x_cases_round_trip(tmp_path, genes_by_cases, expected, name, sep):
    path = tmp_path / name
    genes_by_cases.reset_index().to_csv(path, sep=sep, index=False)
    _same(read_rna_table(path), expected)


def test_per_case_folder_round_trip(tmp_path, genes_by_cases, expected):
    for case in genes_by_cases.columns:
        pd.DataFrame({"Gene": genes_by_cases.index, "Value": genes_by_cases[case].to_numpy()}).to_csv(
            tmp_path / f"{case}.csv", index=False)
    got = read_rna_table(tmp_path)
    _same(got.loc[expected.index], expected)  # files are read in name order


def test_cases_x_genes_round_trip(tmp_path, expected):
    path = tmp_path / "cases.csv"
    expected.reset_index().to_csv(path, index=False)
    _same(read_rna_table(path, layout="cases_x_genes"), expected)


def test_wide_table_keeps_first_row_per_case_and_warns_on_disagreement(tmp_path):
    frame = pd.DataFrame({"case_id": ["A", "A", "B"], "slide_id": ["a1", "a2", "b1"], "age": [50, 50, 61],
                          "TP53_rnaseq": [1.5, 1.5, -0.5], "EGFR_rnaseq": [0.25, 0.25, 2.0],
                          "TP53_cnv": [1, 1, -1]})
    path = tmp_path / "tcga_x.csv.gz"
    frame.to_csv(path)
    got = read_rna_table(path)
    assert list(got.index) == ["A", "B"] and list(got.columns) == ["TP53", "EGFR"]
    np.testing.assert_array_equal(got.to_numpy(), [[1.5, 0.25], [-0.5, 2.0]])
    np.testing.assert_array_equal(read_rna_table(path, modality="cnv").to_numpy(), [[1], [-1]])
    frame.loc[1, "EGFR_rnaseq"] = 9.0
    frame.to_csv(path)
    with pytest.warns(UserWarning, match="1 cases have slide rows with different rnaseq"):
        got = read_rna_table(path)
    assert got.loc["A", "EGFR"] == 0.25


def test_parquet_round_trip_or_clear_error(tmp_path, expected):
    path = tmp_path / "expression.parquet"
    have_engine = importlib.util.find_spec("pyarrow") or importlib.util.find_spec("fastparquet")
    if not have_engine:
        path.write_bytes(b"PAR1")
        with pytest.raises(MstarError, match="parquet needs pyarrow"):
            read_rna_table(path)
        return
    expected.T.reset_index().to_parquet(path)
    _same(read_rna_table(path), expected)


def test_duplicated_genes_are_averaged(tmp_path):
    path = tmp_path / "dup.csv"
    pd.DataFrame({"gene": ["A", "B", "A"], "c1": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"1 duplicated gene symbols averaged \(A\)"):
        got = read_rna_table(path)
    assert got.loc["c1", "A"] == 2.0 and got.loc["c1", "B"] == 2.0
    folder = tmp_path / "cases"  # one case's Gene,Value file says so too, naming the file
    folder.mkdir()
    pd.DataFrame({"Gene": ["A", "B", "A"], "Value": [1.0, 2.0, 99.0]}).to_csv(folder / "c1.csv", index=False)
    with pytest.warns(UserWarning, match=r"c1.csv: 1 duplicated gene symbols averaged \(A\)"):
        got = read_rna_table(folder)
    assert got.loc["c1", "A"] == 50.0


def test_numeric_looking_case_ids_keep_their_zeros(tmp_path):
    wide = tmp_path / "tcga_num.csv"
    pd.DataFrame({"case_id": ["001", "002"], "TP53_rnaseq": [1.0, 2.0]}).to_csv(wide, index=False)
    assert list(read_rna_table(wide).index) == ["001", "002"]
    cases = tmp_path / "cases.csv"
    pd.DataFrame({"case": ["007", "010"], "TP53": [1.0, 2.0]}).to_csv(cases, index=False)
    assert list(read_rna_table(cases, layout="cases_x_genes").index) == ["007", "010"]


@pytest.mark.parametrize("content,layout,message", [
    ("gene,c1\nA,high\n", "auto", "'c1' is not numeric"),
    ("gene\nA\n", "auto", "an id column and at least one value column"),
    ("slide_id,A_rnaseq\ns1,1.0\n", "auto", "needs a 'case_id' column"),
    ("case_id,A_cnv\nc1,1.0\n", "wide", "no '\\*_rnaseq' columns"),
    ("gene,c1\nA,1\n", "sideways", "layout 'sideways' is unknown"),
])
def test_wrong_tables_raise_one_line_errors(tmp_path, content, layout, message):
    path = tmp_path / "table.csv"
    path.write_text(content)
    with pytest.raises(MstarError, match=message):
        read_rna_table(path, layout=layout)


def test_missing_path_unknown_format_and_bad_per_case_file(tmp_path):
    with pytest.raises(MstarError, match="does not exist"):
        read_rna_table(tmp_path / "nope.csv")
    (tmp_path / "table.xlsx").write_text("x")
    with pytest.raises(MstarError, match="unknown RNA table format"):
        read_rna_table(tmp_path / "table.xlsx")
    folder = tmp_path / "cases"
    folder.mkdir()
    with pytest.raises(MstarError, match="no per-case RNA files"):
        read_rna_table(folder)
    (folder / "C1.csv").write_text("Symbol,Expr\nA,1\n")
    with pytest.raises(MstarError, match="C1.csv: per-case RNA file needs columns Gene,Value"):
        read_rna_table(folder)
    # mstar synth's rna/ folder: the genes x cases table beside the per-case folder
    (folder / "C1.csv").unlink()
    (folder / "expression.csv").write_text("gene,C1,C2\nA,1,2\n")
    (folder / "cases").mkdir()
    with pytest.raises(MstarError, match=r"read as one case of the per-case folder .*; a whole table is "
                                         r"passed as the file itself \(--rna .*expression.csv\), per-case "
                                         r"files as their folder \(here: .*cases\?\)"):
        read_rna_table(folder)


def test_match_genes_masks_missing_and_warns_about_unseen():
    table = pd.DataFrame({"A": [1.0, 2.0], "B": [3.0, np.nan], "X": [5.0, 6.0], "Y": [0.0, 0.0]},
                         index=pd.Index(["c1", "c2"], name="case_id"))
    with pytest.warns(UserWarning, match="2 of 4 table genes are not in the gene vocabulary"):
        m = match_genes(table, ["B", "A", "M"])
    assert (m.n_matched, m.n_unseen, m.missing, m.cases) == (2, 2, ["M"], ["c1", "c2"])
    np.testing.assert_array_equal(m.values, [[3.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    np.testing.assert_array_equal(m.mask, [[True, True, False], [False, True, False]])
    assert m.values.dtype == np.float32


def test_match_genes_silent_when_all_known_and_errors_when_nothing_matches():
    table = pd.DataFrame({"A": [1.0]}, index=["c1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert match_genes(table, ["A"]).n_matched == 1
    with pytest.raises(MstarError, match="no gene of the RNA table is in the gene vocabulary"), \
            pytest.warns(UserWarning, match="1 of 1 table genes"):
        match_genes(table, ["Z"])
    with pytest.raises(MstarError, match="duplicated"):
        match_genes(table, ["A", "A"])


def test_signatures_matched_against_synthetic_table(tmp_path, expected):
    path = tmp_path / "signatures.csv"
    signature_table(3).to_csv(path, index=False)
    sig = read_signatures(path, expected.columns[:-10])  # the last 10 genes are absent
    assert len(sig.groups) == 6
    listed = sum(n for _, n in sig.counts.values())
    matched = sum(n for n, _ in sig.counts.values())
    assert listed == expected.shape[1] and matched == expected.shape[1] - 10
    assert all(len(sig.groups[k]) == sig.counts[k][0] for k in sig.groups)
    wide = read_signatures(path, [f"{g}_rnaseq" for g in expected.columns] + ["ESR1_cnv"],
                           suffixes=("_cnv", "_rnaseq"))
    assert "ESR1_cnv" in wide.groups["Cell Differentiation Markers"]
    with pytest.raises(MstarError, match="no signature gene"):
        read_signatures(path, ["NOT_A_GENE"])


@pytest.mark.shared_data
def test_tcga_wide_table_and_signatures(shared_data):
    folder = shared_data / "tcga_omics"
    if not (folder / "tcga_blca.csv.gz").exists():
        pytest.skip(f"{folder}/tcga_blca.csv.gz is absent")
    table = read_rna_table(folder / "tcga_blca.csv.gz")
    assert 1400 < table.shape[1] < 1700  # ~1.5k *_rnaseq genes
    assert table.index.is_unique and table.shape[0] > 300 and table.index[0].startswith("TCGA-")
    assert not table.isna().any().any()
    sig = read_signatures(folder / "signatures.csv", table.columns)
    assert len(sig.counts) == 6 and all(matched > 0 for matched, _ in sig.counts.values())
    assert sig.counts["Tumor Suppressor Genes"][1] == 82
