"""Preparing raw OCR reports: clean-up, one text per patient, diagnosis-first truncation, the table reader."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from mstar.data.report_prep import (
    PrepCounts,
    clean_ocr,
    one_per_patient,
    prepare_reports,
    prioritise_sections,
)
from mstar.data.reports import load_reports, read_reports
from mstar.errors import MstarError

RAW = """--- Page 1 ---
UUID:D9851FF2-70AC-45AD-AF18-B8A4B9F01E17
TCGA-OR-A5JF-01A-PR Redacted
IIIIIIIIIIlIIIIIIII' IIIIIlIII1111I1I1III11
SURGICAL PATHOLOGY REPORT            Page 1 of 2
GROSS DESCRIPTION: The specimen is a 5 cm adeno-
carcinoma mass of the colon.
=========================
FINAL DIAGNOSIS: Adenocarcinoma, grade II, stage I, margins (0/12) negative; ER 95%.
fcf~i:i,\\'.?!i
"""


def test_clean_ocr_removes_artefacts_and_keeps_the_medicine():
    counts = PrepCounts()
    text = clean_ocr(RAW, counts)
    for gone in ("Page", "UUID", "TCGA-OR", "Redacted", "IIIII", "SURGICAL PATHOLOGY REPORT", "===", "fcf~"):
        assert gone not in text, gone
    for kept in ("adenocarcinoma mass", "grade II, stage I", "(0/12)", "ER 95%", "FINAL DIAGNOSIS:"):
        assert kept in text, kept
    assert (counts.page_markers, counts.uuid_lines, counts.barcodes, counts.hyphenations) == (1, 1, 1, 1)
    assert counts.barcode_residue >= 1 and counts.redactions == 1 and counts.headers == 2


def test_one_text_per_patient_drops_ocr_duplicates_and_joins_distinct_reports():
    counts = PrepCounts()
    biopsy = "Final diagnosis: invasive ductal carcinoma of the left breast, core biopsy."
    resection = "Final diagnosis: mastectomy with residual ductal carcinoma in situ, lymph nodes negative."
    ocr_copy = "Final diagnosis: invasive ductal carcinoma of the left breast, core biopsy"  # shorter copy
    text = one_per_patient([ocr_copy, biopsy, resection], counts)
    assert text == f"{resection}\n\n{biopsy}"  # longest first, the shorter OCR copy dropped
    assert counts.duplicate_rows == 1 and counts.multi_report_patients == 1


def test_sections_are_ordered_diagnosis_first_and_cut_to_the_budget():
    text = ("Clinical history: pain.\nGROSS DESCRIPTION: " + "tissue " * 300
            + "\nMicroscopic: sheets of atypical cells.\nFINAL DIAGNOSIS: adenocarcinoma of the lung.")
    counts = PrepCounts()
    out = prioritise_sections(text, max_tokens=30, counts=counts)
    assert out.startswith("FINAL DIAGNOSIS: adenocarcinoma of the lung. "
                          "Microscopic: sheets of atypical cells. "
                          "Clinical history: pain. GROSS DESCRIPTION: tissue")
    assert len(out.split()) <= 30 / 1.35 + 1 and counts.reordered == 1 and counts.truncated == 1
    assert prioritise_sections("no headers here", None) == "no headers here"


def test_prepare_reports_counts_missing_ids_and_empty_patients():
    rows = [("P1", "FINAL DIAGNOSIS: clear cell renal cell carcinoma."), (float("nan"), "orphan text"),
            ("P2", "IIIII1111 ||||"), ("P1", "FINAL DIAGNOSIS: clear cell renal cell carcinoma")]
    out, counts = prepare_reports(rows)
    assert out == {"P1": "FINAL DIAGNOSIS: clear cell renal cell carcinoma.", "P2": ""}
    assert counts.no_case == 1 and counts.patients == 2 and counts.empty_patients == ["P2"]
    assert "4 rows (1 without a case id) -> 2 patients (1 empty after clean-up" in counts.summary()


def test_report_tables_are_read_and_bad_ones_are_one_line_errors(tmp_path):
    a1, b, a2 = ("FINAL DIAGNOSIS: adenocarcinoma, grade 2.", "GROSS: a tan nodule of 2 cm in fat.",
                 "COMMENT: the margins are clear of tumour.")
    table = pd.DataFrame({"case_id": ["A", "B", "A"], "project": "X", "text": [a1, b, a2]})
    path = tmp_path / "reports.csv.gz"
    with gzip.open(path, "wt") as f:
        table.to_csv(f, index=False)
    raw = read_reports(path)
    assert raw == {"A": f"{a1}\n\n{a2}", "B": b}
    prepared, counts = load_reports(path)  # auto: a table is prepared
    assert counts.patients == 2 and prepared["A"].startswith(a1) and prepared["B"] == b
    (tmp_path / "r.json").write_text(json.dumps({"A": "IIIII1111 text"}))
    assert load_reports(tmp_path / "r.json") == ({"A": "IIIII1111 text"}, None)  # auto: JSON as written
    for frame, message in ((table.rename(columns={"case_id": "who"}),
                            r"no case-id column \(looked for case_id"),
                           (table.rename(columns={"text": "body"}), r"no text column \(looked for text"),
                           (table.assign(text=""), "holds only empty strings")):
        frame.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(MstarError, match=message) as err:
            load_reports(tmp_path / "bad.csv")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("doc", [{"A": "text", "B": {"text": "nested"}},
                                 {"train": [{"id": "A", "report": ["a", "list"]}]}],
                         ids=["mapping", "histgen"])
def test_a_report_that_is_not_text_is_named_not_trained_on_as_its_repr(tmp_path, doc):
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(MstarError, match=r"r.json: the report of '(B|A)' is a (dict|list), not text"):
        read_reports(tmp_path / "r.json")
    (tmp_path / "ok.json").write_text(json.dumps({"A": "text", "B": None}))
    assert read_reports(tmp_path / "ok.json") == {"A": "text", "B": ""}


def test_inline_ocr_artefacts_go_and_roman_numerals_stay():
    line = ("PROCEDURE: cystectomy.UUID :FIC2FSC6-C3F6 -4E69 -90FE -E55A44571779 FINAL DIAGNOSIS :"
            "TCGA -6T-A20U "
            "-01A-PRRedactedIIIII PART 1: IIIIIIIIIIIIIPART 2: stage IIIA carcinoma, grade III.")
    text = clean_ocr(line)
    assert text == "PROCEDURE: cystectomy. FINAL DIAGNOSIS: PART 1: PART 2: stage IIIA carcinoma, grade III."
    text = "PRE-OP DIAGNOSIS : Bladder cancer.\nFINAL DIAGNOSIS : urothelial carcinoma."
    pre_op = prioritise_sections(text, None)
    assert pre_op.startswith("FINAL DIAGNOSIS : urothelial carcinoma. PRE-OP DIAGNOSIS : Bladder cancer.")


def test_a_rewritten_reports_table_is_read_again_not_served_from_memory(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"case_id": ["A"], "text": ["FINAL DIAGNOSIS: adenocarcinoma of the colon."]}).to_csv(path)
    first, _ = load_reports(path)
    first["A"] = "changed by the caller"  # callers get copies
    assert load_reports(path)[0]["A"] == "FINAL DIAGNOSIS: adenocarcinoma of the colon."
    lung = "FINAL DIAGNOSIS: squamous cell carcinoma of the lung."
    pd.DataFrame({"case_id": ["A"], "text": [lung]}).to_csv(path)
    assert load_reports(path)[0]["A"] == "FINAL DIAGNOSIS: squamous cell carcinoma of the lung."
