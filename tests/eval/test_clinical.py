from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mstar.data.synthetic.reports import MARKER_SENTENCES, write_report
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.data.synthetic.types import CANCER_TYPES
from mstar.errors import MstarError
from mstar.eval.bootstrap import bootstrap_ci
from mstar.eval.clinical import clinical_accuracy, extract_cancer_type, extract_marker, load_classes
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


def test_clinical_intervals_bootstrap_the_judged_reports_only():
    types = ["BRCA", "LUSC", "KIRC"]
    names = {"BRCA": "invasive ductal carcinoma", "LUSC": "lung squamous cell carcinoma",
             "KIRC": "clear cell renal cell carcinoma"}
    rng = np.random.default_rng(0)
    truth, generated = {}, {}
    for i in range(40):  # 40 reports; every 4th has no known TP53 status
        true, said = types[i % 3], types[rng.integers(3)]
        truth[i] = {"cancer_type": true, "marker": None if i % 4 == 0 else int(rng.integers(2))}
        status = "mutant" if rng.integers(2) else "wild-type"
        generated[i] = f"{names[said]} . p53 immunostain {status} pattern ."
    s = clinical_accuracy(generated, truth)
    ci = s.ci(n_resamples=400, seed=3)
    right = np.array([s.per_report[k]["cancer_type"] == truth[k]["cancer_type"] for k in generated], float)
    reference = bootstrap_ci(np.mean, right, n_resamples=400, seed=3)  # the generic path, same resamples
    assert ci["cancer_type_accuracy"] == pytest.approx(reference)
    assert ci["cancer_type_accuracy"]["value"] == pytest.approx(s.cancer_type_accuracy)
    marker = ci["marker_accuracy"]
    assert marker["n"] == 30 and marker["value"] == pytest.approx(s.marker_accuracy)
    assert ci["marker_accuracy"]["ci_low"] < s.marker_accuracy < ci["marker_accuracy"]["ci_high"]
    with pytest.warns(UserWarning, match="XXX are not classes"):
        unknown = clinical_accuracy({"a": "tumor ."}, {"a": {"cancer_type": "XXX", "marker": None}})
    assert unknown.ci(100) == {}  # nothing judged: no interval, never a number
    assert np.isnan(s.ci(0)["cancer_type_accuracy"]["ci_low"])


THORACIC = {"0": {"classnames": {
    "LUAD": ["adenocarcinoma of the lung", "pulmonary adenocarcinoma",
             "non-small cell carcinoma, adenocarcinoma type"],
    "SCLC": ["small cell carcinoma", "oat cell carcinoma"],
    "MESO": ["malignant mesothelioma, epithelioid type", "diffuse pleural mesothelioma", "mesothelioma"],
    "CARC": ["typical carcinoid tumour", "atypical carcinoid", "carcinoid tumour"]},
    "templates": ["CLASSNAME."]}}


@pytest.fixture
def thoracic(tmp_path):
    path = tmp_path / "thoracic.json"
    path.write_text(json.dumps(THORACIC))
    return str(path)


def test_a_plain_class_to_names_file_reads_as_the_prompt_files_classes(thoracic, tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(json.loads(Path(thoracic).read_text())["0"]["classnames"]))
    assert load_classes(str(plain)).names == load_classes(thoracic).names
    (tmp_path / "two.json").write_text(json.dumps({"a": {"classnames": {}}, "b": {"classnames": {}}}))
    with pytest.raises(MstarError, match=r"none is '0'; write one set .* or a plain \{CLASS: \[names\]\}"):
        load_classes(str(tmp_path / "two.json"))
    (tmp_path / "templates.json").write_text(json.dumps({"templates": ["a photo of CLASSNAME."]}))
    with pytest.raises(MstarError, match="classnames"):  # the schema's own keys are not class names
        load_classes(str(tmp_path / "templates.json"))


def test_default_classes_are_the_packaged_synthetic_names():
    names = load_classes()
    assert names.source == "synthetic_cancer_type" and names.codes == list(CANCER_TYPES)
    for code, ct in CANCER_TYPES.items():
        assert names.names[code] == tuple(clean_report(n).removesuffix(" .") for n in ct.names)


def test_custom_classes_from_a_prompts_file_with_negated_distractors(thoracic):
    reports = {
        "LUAD": "Diagnosis: pulmonary adenocarcinoma, 3.4 cm. No component of small cell carcinoma is "
                "identified. Negative for mesothelioma.",
        "SCLC": "Sections show small cell carcinoma. There is no evidence of carcinoid tumour; features of "
                "adenocarcinoma of the lung are not seen.",
        "MESO": "FINAL DIAGNOSIS: Pleura - malignant mesothelioma, epithelioid type. Small cell carcinoma is "
                "excluded.",
        "CARC": "Consistent with atypical carcinoid. No oat cell carcinoma; mesothelioma is not identified.",
        "LUAD2": "Non-small cell carcinoma, adenocarcinoma type.",  # holds "small cell carcinoma"
    }
    for code, text in reports.items():
        for form in (text, clean_report(text)):  # raw and generated (cleaned) text
            assert extract_cancer_type(form, thoracic) == code[:4], form
            assert extract_cancer_type(form) is None  # the synthetic classes know none of them
    assert extract_cancer_type("No evidence of malignant mesothelioma, epithelioid type.", thoracic) is None
    assert extract_cancer_type("Small cell carcinoma and atypical carcinoid.", thoracic) is None  # two types
    truth = {k: {"cancer_type": k[:4]} for k in reports}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class is known: no warning
        s = clinical_accuracy(reports, truth, classes=thoracic)
    assert s.cancer_type_accuracy == 1.0 and s.cancer_type_stated == 1.0 and s.unknown_classes == []
    assert s.cancer_type_by_class == {"CARC": 1.0, "LUAD": 1.0, "MESO": 1.0, "SCLC": 1.0}
    assert s.marker_accuracy is None and s.classes == thoracic
    wrong = dict(reports, SCLC="Negative for small cell carcinoma. Adenocarcinoma of the lung.")
    assert clinical_accuracy(wrong, truth, classes=thoracic).cancer_type_by_class["SCLC"] == 0.0
    # a {code: [names]} mapping works as well as a file
    mapping = {c: v for c, v in THORACIC["0"]["classnames"].items()}
    assert clinical_accuracy(reports, truth, classes=mapping).cancer_type_accuracy == 1.0


def test_unknown_true_classes_cannot_be_judged(thoracic):
    generated = {"a": "small cell carcinoma .", "b": "adenocarcinoma of the lung .", "c": "tumour ."}
    truth = {"a": {"cancer_type": "SCLC"}, "b": {"cancer_type": "LUAD"}, "c": {"cancer_type": "CARC"}}
    with pytest.warns(UserWarning, match=r"true class\(es\) CARC, LUAD, SCLC are not classes of "
                                         r"synthetic_cancer_type .*None.*set `classes`") as record:
        s = clinical_accuracy(generated, truth)  # the synthetic classes: BRCA, LUSC, KIRC
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert s.cancer_type_accuracy is None and s.cancer_type_stated is None
    assert s.unknown_classes == ["CARC", "LUAD", "SCLC"] and s.notes == [str(record[0].message)]
    assert s.cancer_type_by_class == {"CARC": None, "LUAD": None, "SCLC": None}
    assert s.cancer_type_majority == pytest.approx(1 / 3)
    partial = {"0": {"classnames": {k: v for k, v in THORACIC["0"]["classnames"].items() if k != "CARC"}}}
    path = Path(thoracic).with_name("partial.json")
    path.write_text(json.dumps(partial))
    with pytest.warns(UserWarning, match=r"true class\(es\) CARC are not classes of"):
        s = clinical_accuracy(generated, truth, classes=str(path))
    assert s.cancer_type_accuracy is None  # never a number over a silently chosen subset
    assert s.cancer_type_by_class == {"CARC": None, "LUAD": 1.0, "SCLC": 1.0}


def test_reference_texts_stating_no_known_class_are_reported(thoracic):
    generated = {"a": "small cell carcinoma .", "b": "tumour ."}
    refs = {"a": "Small cell carcinoma.", "b": "Benign lung tissue. No evidence of small cell carcinoma."}
    with pytest.warns(UserWarning, match="1 of 2 reference reports state none"):
        s = clinical_accuracy(generated, refs, classes=thoracic)
    assert s.unjudged == 1 and s.cancer_type_accuracy == 1.0  # over the one judged reference


def test_marker_is_none_when_no_report_states_one():
    generated = {"a": "invasive ductal carcinoma .", "b": "lung squamous cell carcinoma ."}
    truth = {"a": {"cancer_type": "BRCA", "marker": 1}, "b": {"cancer_type": "LUSC", "marker": 0}}
    s = clinical_accuracy(generated, truth)
    assert s.cancer_type_accuracy == 1.0 and s.marker_accuracy is None  # not 0.00
    s = clinical_accuracy(dict(generated, b="lung squamous cell carcinoma . p53 wild-type pattern ."), truth)
    assert s.marker_accuracy == 0.5


def test_bad_classes_are_clear_errors(tmp_path):
    with pytest.raises(MstarError, match="not found"):
        load_classes(str(tmp_path / "missing.json"))
    with pytest.raises(MstarError, match="class 'X' has no name"):
        load_classes({"X": [" . "]})
