import pytest

from mstar.data.negation import drop_negated, is_negated, sentences
from mstar.data.report_text import clean_report


@pytest.mark.parametrize("sentence, term", [
    ("No component of small cell carcinoma is identified.", "small cell carcinoma"),
    ("Negative for mesothelioma.", "mesothelioma"),
    ("No evidence of carcinoid tumour.", "carcinoid tumour"),
    ("Features of adenocarcinoma are not seen.", "adenocarcinoma"),
    ("The specimen is free of carcinoma.", "carcinoma"),
    ("In the absence of mesothelioma, ...", "mesothelioma"),
    ("Sections without necrosis.", "necrosis"),
    ("Absent lymphovascular invasion.", "lymphovascular invasion"),
    ("Lymphovascular invasion is absent.", "lymphovascular invasion"),
    ("Small cell carcinoma is ruled out.", "small cell carcinoma"),
    ("Small cell carcinoma is not present.", "small cell carcinoma"),
    ("This is not adenocarcinoma.", "adenocarcinoma"),
    ("A carcinoid tumour of the lung is not identified.", "carcinoid tumour of the lung"),
    ("Small cell carcinoma component is not identified.", "small cell carcinoma"),
    ("no evidence of small cell carcinoma .", "small cell carcinoma"),  # cleaned text
])
def test_negated_mentions(sentence, term):
    assert is_negated(sentence, term)
    assert is_negated(clean_report(sentence), term)  # the rules read cleaned text too


@pytest.mark.parametrize("sentence, term", [
    ("Invasive ductal carcinoma without lymphovascular invasion.", "invasive ductal carcinoma"),
    ("Invasive carcinoma of no special type.", "invasive carcinoma"),
    ("Adenocarcinoma, not otherwise specified.", "adenocarcinoma"),
    ("Small cell carcinoma cannot be ruled out.", "small cell carcinoma"),
    ("No necrosis is seen in this adenocarcinoma.", "adenocarcinoma"),  # the scope ends at "is"
    ("No necrosis; adenocarcinoma of the lung.", "adenocarcinoma"),  # ";" ends the clause
    ("There is no small cell component, but adenocarcinoma is present.", "adenocarcinoma"),
    ("No small cell component; however, adenocarcinoma is present.", "adenocarcinoma"),
    ("Adenocarcinoma present, small cell carcinoma is not identified.", "adenocarcinoma"),
    ("Carcinoma with absent necrosis.", "carcinoma"),
    ("adenocarcinoma of the lung lymphovascular invasion not identified .", "adenocarcinoma of the lung"),
    ("Non-small cell carcinoma.", "small cell carcinoma"),  # not mentioned at all
    ("Adenocarcinoma. No evidence of adenocarcinoma in the nodes.", "adenocarcinoma"),  # one affirmed
])
def test_affirmed_or_absent_mentions(sentence, term):
    assert not is_negated(sentence, term)


def test_window_limits_the_scope():
    assert is_negated("No sign of a definite component of small cell carcinoma.", "small cell carcinoma")
    assert not is_negated("No vascular or perineural invasion in any of the sections of the carcinoma.",
                          "carcinoma")


def test_sentences_join_back_and_keep_decimals():
    text = "Tumour 3.4 cm. Grade 2!\nNodes 0/11"
    assert sentences(text) == ["Tumour 3.4 cm. ", "Grade 2!\n", "Nodes 0/11"]
    assert "".join(sentences(text)) == text


def test_drop_negated_removes_negated_parts_and_keeps_the_rest_verbatim():
    text = ("FINAL DIAGNOSIS:  Lung,  lobectomy: adenocarcinoma (3.4 cm). No evidence of small cell "
            "carcinoma. Negative for mesothelioma. Surgical margins are free of tumour.")
    assert drop_negated(text) == "FINAL DIAGNOSIS:  Lung,  lobectomy: adenocarcinoma (3.4 cm)."
    assert drop_negated("Adenocarcinoma without necrosis. Grade 2.") == "Adenocarcinoma. Grade 2."
    assert drop_negated("The tumour measures 3 cm but no necrosis is seen.") == "The tumour measures 3 cm."
    assert drop_negated("Adenocarcinoma present, small cell carcinoma is not identified.") == \
        "Adenocarcinoma present."
    assert drop_negated("Tumour (no necrosis) measures 2 cm.") == "Tumour measures 2 cm."
    assert drop_negated("Features of a carcinoid are not seen.\n") == ""
    assert drop_negated("adenocarcinoma . no evidence of small cell carcinoma . 3.4 cm .") == \
        "adenocarcinoma . 3.4 cm ."
    plain = "Invasive carcinoma of no special type, grade 2.\nKi-67 20%.  Margins clear.\n"
    assert drop_negated(plain) == plain  # nothing negated: character for character
    assert drop_negated("") == ""
