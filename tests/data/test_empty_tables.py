"""Empty (or unparsable) input tables are one error line naming the file and what it should hold, never
pandas' ``EmptyDataError: No columns to parse from file``."""

from __future__ import annotations

import gzip
import re

import pandas as pd
import pytest

from mstar.data.cohort_tables import read_fold_dir, read_survival_cohort
from mstar.data.omics import read_omics
from mstar.data.rna import read_gene_values, read_rna_table, read_signatures, table_columns
from mstar.data.tables import read_csv_table
from mstar.errors import MstarError


def _empty(path):
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb"):
            pass
    else:
        path.write_bytes(b"" if path.suffix != ".txt" else b"\n\n")
    return path


@pytest.mark.parametrize("name", ["rna.csv", "rna.tsv.gz", "rna.txt", "rna.parquet"])
def test_an_empty_rna_table_is_named_and_described(tmp_path, name):
    path = _empty(tmp_path / name)
    want = rf"^{re.escape(str(path))}: the RNA table is empty; it should hold a header row, then one row per"
    for read in (read_rna_table, lambda p: read_rna_table(p, layout="wide"), read_omics):  # --rna, --omics
        with pytest.raises(MstarError, match=want):
            read(path)
    if name != "rna.parquet":
        with pytest.raises(MstarError, match=want):
            table_columns(path)


def test_an_empty_per_case_file_and_signatures_file(tmp_path):
    (tmp_path / "cases").mkdir()
    pd.DataFrame({"Gene": ["A", "B"], "Value": [1.0, 2.0]}).to_csv(tmp_path / "cases" / "C-1.csv",
                                                                   index=False)
    empty = _empty(tmp_path / "cases" / "C-2.csv")
    with pytest.raises(MstarError, match=rf"^{re.escape(str(empty))}: the per-case RNA file is empty; it "
                                         "should hold columns Gene,Value"):
        read_rna_table(tmp_path / "cases")
    with pytest.raises(MstarError, match="per-case RNA file is empty"):
        read_gene_values(empty)
    signatures = _empty(tmp_path / "signatures.csv")
    with pytest.raises(MstarError, match=rf"^{re.escape(str(signatures))}: the signatures file is empty; it "
                                         "should hold one column per gene family"):
        read_signatures(signatures, ["A", "B"])


def test_an_empty_fold_file_and_survival_table(tmp_path):
    folds = tmp_path / "folds"
    folds.mkdir()
    pd.DataFrame({"train": ["a", "b"], "val": ["c", ""]}).to_csv(folds / "splits_1.csv", index=False)
    empty = _empty(folds / "splits_0.csv")
    with pytest.raises(MstarError, match=rf"^{re.escape(str(empty))}: the fold file is empty; it should hold "
                                         "columns train,val"):
        read_fold_dir(folds)
    manifest = _empty(tmp_path / "manifest.csv")
    with pytest.raises(MstarError, match=rf"^{re.escape(str(manifest))}: the survival table is empty; it "
                                         "should hold a survival manifest"):
        read_survival_cohort(manifest, folds)


def test_an_unparsable_table_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(MstarError, match=r"bad.csv.gz: cannot read the RNA table as a CSV/TSV table \(Not a "
                                         r"gzipped file"):
        read_rna_table(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('a,b\n1,"2\n')  # an unclosed quote
    with pytest.raises(MstarError, match=r"ragged.csv: cannot read the fold file as a CSV/TSV table"):
        read_csv_table(ragged, "fold file", "columns train,val")
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    assert read_csv_table(good, "table", "anything").to_dict("list") == {"a": [1], "b": [2]}


@pytest.mark.parametrize("kind", ["manifest", "reports", "patch labels"])
def test_empty_manifest_reports_and_patch_label_files_are_one_line_too(tmp_path, kind):
    path = tmp_path / f"{kind.replace(' ', '_')}.csv"
    path.write_text("")
    if kind == "manifest":
        from mstar.data.manifest import read_manifest

        call, said = (lambda: read_manifest(path)), "the manifest is empty; it should hold a header line"
    elif kind == "reports":
        from mstar.data.reports import read_reports

        call, said = (lambda: read_reports(path)), "the reports table is empty; it should hold columns"
    else:
        from mstar.selftrain.labels import patch_labels

        call, said = (lambda: patch_labels(str(path), [])), "the patch label file is empty"
    with pytest.raises(MstarError, match=said) as err:
        call()
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, said", [
    (b"", "the reports file is empty; it should hold"),
    (b'{"A": "caf\xe9 report"}', r"the reports file is not UTF-8 text \(byte 10\); save it as UTF-8"),
    (b'{"A": "report",}', r"not valid JSON \(.* at line 1\)"),
])
def test_reports_and_prompt_json_failures_are_one_line(tmp_path, content, said):
    from mstar.data.prompts import read_classnames
    from mstar.data.reports import read_reports

    path = tmp_path / "reports.json"
    path.write_bytes(content)
    with pytest.raises(MstarError, match=said) as err:
        read_reports(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(MstarError, match=said.replace("reports file", "prompt file")):
        read_classnames(path)
