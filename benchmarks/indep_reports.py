"""Report text of the independent cohort (``benchmarks/indep_cohort.py``): wording tables, one report a case.

Written apart from ``mstar synth``'s reports, with its own phrasing: several synonyms per class, numbers that
carry the case's risk, boilerplate, and NEGATED mentions of other classes (``NEGATIONS``, chosen by the
``DIFFERENTIAL`` weights in ``make_cohort``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SYNONYMS = {
    "LUAD": ["adenocarcinoma of the lung", "pulmonary adenocarcinoma",
             "non-small cell carcinoma, adenocarcinoma type", "invasive mucinous adenocarcinoma",
             "invasive non-mucinous adenocarcinoma"],
    "SCLC": ["small cell carcinoma", "small cell neuroendocrine carcinoma", "oat cell carcinoma",
             "small cell lung carcinoma"],
    "MESO": ["malignant mesothelioma, epithelioid type", "diffuse pleural mesothelioma",
             "sarcomatoid mesothelioma", "malignant pleural mesothelioma"],
    "CARC": ["typical carcinoid tumour", "atypical carcinoid", "well-differentiated neuroendocrine tumour",
             "carcinoid tumour of the lung"],
}
TEMPLATES = ["CLASSNAME.", "an H&E image of CLASSNAME.", "a histopathology slide showing CLASSNAME.",
             "H&E stained section of CLASSNAME.", "a photomicrograph of CLASSNAME.",
             "tissue from a thoracic resection with CLASSNAME.", "this is CLASSNAME."]

# Negated mentions of a class, used as distractors in reports of other classes; each names the class.
NEGATIONS = {
    "LUAD": ["Features of adenocarcinoma are not seen.", "There is no evidence of adenocarcinoma.",
             "No glandular component to suggest adenocarcinoma is identified.",
             "Napsin A is negative, arguing against adenocarcinoma."],
    "SCLC": ["No component of small cell carcinoma is identified.", "Small cell carcinoma is excluded.",
             "There is no small cell carcinoma component.",
             "No areas resembling small cell carcinoma are seen."],
    "MESO": ["Negative for mesothelioma (calretinin negative).", "No evidence of malignant mesothelioma.",
             "The findings are not those of mesothelioma.",
             "Mesothelioma is not favoured; WT1 and calretinin are negative."],
    "CARC": ["There is no evidence of carcinoid tumour.", "No carcinoid tumour or tumourlet is present.",
             "A carcinoid tumour is not identified.", "Features of a carcinoid are not seen."],
}
# How likely each other class is to be raised (and negated) as a differential in a report of a class.
DIFFERENTIAL = {
    "LUAD": {"SCLC": 0.4, "MESO": 0.4, "CARC": 0.2},
    "SCLC": {"CARC": 0.5, "LUAD": 0.4, "MESO": 0.1},
    "MESO": {"LUAD": 0.7, "SCLC": 0.1, "CARC": 0.2},
    "CARC": {"SCLC": 0.6, "LUAD": 0.3, "MESO": 0.1},
}
SPECIMENS = {
    "LUAD": ["right upper lobe, lobectomy", "left lower lobe, lobectomy", "right lower lobe, wedge resection",
             "left upper lobe, segmentectomy"],
    "SCLC": ["right upper lobe, lobectomy", "left hilar mass, resection", "right middle lobe, lobectomy",
             "left upper lobe, sleeve lobectomy"],
    "MESO": ["right parietal pleura, pleurectomy/decortication", "left pleura, extended pleurectomy",
             "right pleural mass, VATS biopsy and resection",
             "left pleura and lung, extrapleural pneumonectomy"],
    "CARC": ["right main bronchus, sleeve resection", "left lower lobe, lobectomy",
             "right middle lobe, lobectomy", "left upper lobe, wedge resection"],
}
HEADERS = ["SURGICAL PATHOLOGY REPORT", "Specimen: {specimen}.", "PATHOLOGY - THORACIC",
           "Histopathology report. Specimen: {specimen}.", "FINAL REPORT ({specimen})",
           "Specimen: {specimen}."]
DIAGNOSIS = ["Diagnosis: {name}.", "FINAL DIAGNOSIS: {specimen} - {name}.", "Sections show {name}.",
             "The appearances are those of {name}.", "Consistent with {name}.",
             "Histology confirms {name}."]
SIZE = ["The tumour measures {cm:.1f} cm in greatest dimension.", "Tumor size: {mm} mm.",
        "Maximum tumour diameter {cm:.1f} cm.", "A {cm:.1f} x {b:.1f} x {c:.1f} cm mass is present.",
        "Greatest tumour dimension is {cm:.1f} cm.", "The lesion is {mm} mm across."]
MESO_SIZE = ["Maximum pleural thickness {cm:.1f} cm.", "The pleural tumour is up to {cm:.1f} cm thick.",
             "Pleural rind measuring up to {mm} mm."]
NODES = ["Lymph nodes: {k} of {n} involved.", "Metastatic tumour in {k}/{n} lymph nodes.",
         "Nodes: {k}/{n} positive.", "{K} of {N} regional lymph nodes contain metastasis.",
         "Lymph node status: {k} positive out of {n} examined."]
NODES_NONE = ["Lymph nodes: 0 of {n} involved.", "All {n} lymph nodes are free of tumour (0/{n}).",
              "Nodes: 0/{n} positive."]
MITOSES = ["Mitotic count: {m} per 2 mm2.", "Mitoses {m}/2 mm\u00b2.", "{m} mitoses per 2 mm2 are counted."]
KI67 = ["Ki-67 proliferation index approximately {p}%.", "Ki67: {p}%.", "Ki-67 labelling index {p}%."]
GRADE = {
    "LUAD": [["well differentiated, lepidic predominant", "grade 1 (lepidic predominant pattern)"],
             ["moderately differentiated, acinar predominant", "grade 2, papillary and acinar patterns"],
             ["poorly differentiated, solid predominant", "grade 3 with a micropapillary component"]],
    "SCLC": [["high grade with focal necrosis", "high grade, limited crush artefact"],
             ["high grade with extensive necrosis", "high grade, sheets of cells with necrosis"],
             ["high grade with extensive necrosis and marked crush artefact",
              "high grade, abundant apoptosis and geographic necrosis"]],
    "MESO": [["low nuclear grade, no necrosis", "nuclear grade I"],
             ["intermediate nuclear grade", "nuclear grade II, focal necrosis"],
             ["high nuclear grade with necrosis", "nuclear grade III, biphasic areas"]],
    "CARC": [["no necrosis, organoid pattern", "bland cytology, no necrosis"],
             ["trabecular pattern, no necrosis", "organoid growth with mild atypia"],
             ["punctate necrosis present", "focal punctate necrosis and nuclear atypia"]],
}
GRADE_SENTENCE = ["Grade/pattern: {g}.", "Morphology: {g}.", "Histological features: {g}."]
IHC = {
    "LUAD": ["TTF-1 and napsin A are positive.", "Immunohistochemistry: CK7 positive, TTF-1 positive."],
    "SCLC": ["Synaptophysin, chromogranin and INSM1 are positive.", "Tumour cells express synaptophysin "
             "and TTF-1; CK is dot-like."],
    "MESO": ["Calretinin, WT1 and D2-40 are positive; claudin-4 is negative.",
             "Tumour cells are positive for calretinin and CK5/6."],
    "CARC": ["Chromogranin and synaptophysin are strongly positive.",
             "Immunostains: synaptophysin positive, chromogranin positive."],
}
LVI = ["No lymphovascular invasion.", "Lymphovascular invasion is not identified."]
LVI_POS = ["Lymphovascular invasion is present.", "Foci of lymphovascular invasion are seen."]
BOILERPLATE = ["The specimen was received in formalin.", "Sections were submitted in {blocks} blocks.",
               "Margins negative for malignancy.", "Fixation time was adequate (6-48 hours).",
               "Representative sections are submitted in cassettes A1-A{blocks}.",
               "The bronchial margin is clear.", "Frozen section was not requested.",
               "Reported by the thoracic pathology service.", "Clinical history: mass on CT."]
NUMBER_WORDS = ["None", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
                "Eleven", "Twelve"]


def _pick(options: list[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def case_report(row: pd.Series, distractors: list[str], rng: np.random.Generator) -> str:
    """Free-text report for one case; ``distractors`` are other classes to negate."""
    label, risk, grade = row["label"], float(row["risk"]), int(row["grade"])
    specimen = _pick(SPECIMENS[label], rng)
    if label == "CARC":
        name = "atypical carcinoid" if risk > 0.4 else _pick(
            [s for s in SYNONYMS["CARC"] if s != "atypical carcinoid"], rng)
    elif label == "MESO" and grade == 2 and rng.random() < 0.5:
        name = "sarcomatoid mesothelioma"
    else:
        name = _pick([s for s in SYNONYMS[label] if s != "sarcomatoid mesothelioma"], rng)
    header = _pick(HEADERS, rng).format(specimen=specimen.capitalize())
    diagnosis = _pick(DIAGNOSIS, rng).format(name=name, specimen=specimen.capitalize())

    cm = float(row["tumour_cm"])
    size_form = MESO_SIZE if label == "MESO" else SIZE
    b = round(cm * rng.uniform(0.5, 0.9), 1)
    c = round(b * rng.uniform(0.5, 1.0), 1)
    body = [_pick(size_form, rng).format(cm=cm, mm=int(round(cm * 10)), b=b, c=c),
            _pick(GRADE_SENTENCE, rng).format(g=_pick(GRADE[label][grade], rng))]
    k, n = int(row["nodes_positive"]), int(row["nodes_examined"])
    if k == 0:
        body.append(_pick(NODES_NONE, rng).format(n=n))
    else:
        form = _pick(NODES, rng)
        if "{K}" in form and n >= len(NUMBER_WORDS):
            form = NODES[0]
        body.append(form.format(k=k, n=n, K=NUMBER_WORDS[min(k, 12)],
                                N=NUMBER_WORDS[min(n, 12)].lower()))
    if label == "SCLC":
        body.append(_pick(MITOSES, rng).format(m=int(max(11, 55 + 20 * risk + rng.normal(0, 8)))))
        if rng.random() < 0.6:
            body.append(_pick(KI67, rng).format(p=int(np.clip(80 + 8 * risk + rng.normal(0, 4), 50, 99))))
    elif label == "CARC":
        mitoses = int(np.clip(2 + 3 * (risk - 0.4) + rng.normal(0, 1), 2, 10)) if risk > 0.4 else int(
            rng.integers(0, 2))
        body.append(_pick(MITOSES, rng).format(m=mitoses))
        if rng.random() < 0.5:
            body.append(_pick(KI67, rng).format(p=int(np.clip(3 + 4 * risk + rng.normal(0, 1.5), 1, 20))))
    elif label == "LUAD" and rng.random() < 0.3:
        body.append(_pick(MITOSES, rng).format(m=int(max(0, 6 + 4 * risk + rng.normal(0, 2)))))
    if rng.random() < 0.6:
        body.append(_pick(IHC[label], rng))
    lvi_positive = risk + rng.normal(0, 0.5) > 0.9
    if rng.random() < 0.7 or lvi_positive:
        body.append(_pick(LVI_POS if lvi_positive else LVI, rng))
    body += [_pick(NEGATIONS[other], rng) for other in distractors]
    blocks = int(rng.integers(3, 15))
    boilerplate = [str(s).format(blocks=blocks) for s in rng.permutation(BOILERPLATE)]
    used = int(rng.integers(0, 4))
    body += boilerplate[:used]
    spare = boilerplate[used:]

    rng.shuffle(body)
    position = 0 if rng.random() < 0.55 else int(rng.integers(0, len(body) + 1))
    body.insert(position, diagnosis)
    sentences = [header, *body]
    while _words(sentences) < 40 and spare:
        sentences.append(spare.pop())
    while _words(sentences) > 120:
        droppable = [i for i, s in enumerate(sentences) if s in boilerplate or s in LVI]
        if not droppable:
            break
        sentences.pop(droppable[-1])
    return "\n".join([sentences[0], " ".join(sentences[1:])])


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)
