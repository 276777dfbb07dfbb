from __future__ import annotations

import numpy as np
import pytest

from mstar.data.synthetic.reports import MARKER_SENTENCES, write_report
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.data.synthetic.types import CANCER_TYPES
from mstar.errors import MstarError
from mstar.eval.clinical import clinical_accuracy, extract_cancer_type, extract_marker
from mstar.models.report.vocab import clean_report


def test_rules_are_exact_on_truth_reports():
    cases = draw_cohort_truth(240, 3, seed=5)
    rng = np.random.default_rng(0)
    reports = {c.case_id: write_report(c, rng) for c in cases}
    truth = {c.case_id: c for c in cases}
    for texts in (reports, {k: clean_report(v) for k, v in reports.items()}):  # raw and tokenised text
        scores = clinical_accuracy(texts, truth)
        assert scores.cancer_type_accuracy == 1.0 and scores.marker_accuracy == 1.0
        assert scores.cancer_type_stated == 1.0 and scores.n == 240
    assert scores.cancer_type_majority == pytest.approx(1 / 3)


def test_every_synonym_and_marker_sentence():
    for code, ct in CANCER_TYPES.items():
        for name in ct.names:
            assert extract_cancer_type(f"Final diagnosis: {name}, grade 2.") == code
    for status, sentences in MARKER_SENTENCES.items():
        for sentence in sentences:
            assert extract_marker(sentence) == status


def test_unstated_or_contradictory_facts_are_none():
    assert extract_cancer_type("final diagnosis carcinoma grade 2 .") is None
    assert extract_cancer_type("invasive ductal carcinoma . lung squamous cell carcinoma .") is None
    assert extract_marker("tumor measures 2 cm .") is None
    both = "p53 immunostain wild-type pattern . molecular testing identified a tp53 mutation ."
    assert extract_marker(both) is None


def test_clinical_accuracy_counts_and_truth_forms():
    generated = {"a": "invasive ductal carcinoma . p53 immunostain wild-type pattern .",
                 "b": "clear cell renal cell carcinoma . tumor .",
                 "c": "tumor ."}
    truth = {"a": {"cancer_type": "BRCA", "marker": 0}, "b": {"cancer_type": "LUSC", "marker": 1},
             "c": "Lung squamous cell carcinoma. No TP53 mutation was identified by molecular testing."}
    s = clinical_accuracy(generated, truth)
    assert s.cancer_type_accuracy == pytest.approx(1 / 3) and s.marker_accuracy == pytest.approx(1 / 3)
    assert s.cancer_type_stated == pytest.approx(2 / 3) and s.cancer_type_majority == pytest.approx(2 / 3)
    assert s.per_report["c"] == {"cancer_type": None, "marker": None, "true_cancer_type": "LUSC",
                                 "true_marker": 0}
    assert "per_report" not in s.summary()
    with pytest.raises(MstarError, match="no truth"):
        clinical_accuracy({"x": "t"}, truth)
