import json

import numpy as np
import pandas as pd

from mstar.data.synthetic import SynthConfig, make_cohort
from mstar.data.synthetic.reports import MARKER_SENTENCES
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.data.synthetic.types import CANCER_TYPES
from mstar.slide.reader import open_slide


def test_same_seed_same_cohort(tiny_cohort, tmp_path):
    again = tmp_path / "again"
    make_cohort(again, SynthConfig(cases=9, seed=0), workers=2, show_progress=False)
    for rel in ("truth.json", "reports.json", "manifests/diagnosis.csv", "manifests/survival.csv",
                "manifests/multimodal_survival.csv", "rna/expression.csv", "signatures.csv"):
        assert (again / rel).read_bytes() == (tiny_cohort / rel).read_bytes(), rel
    for svs in (tiny_cohort / "slides").glob("*.svs"):
        with open_slide(svs) as a, open_slide(again / "slides" / svs.name) as b:
            assert np.array_equal(a.read_region(0, 0, a.level_count - 1, a.level_dimensions[-1]),
                                  b.read_region(0, 0, b.level_count - 1, b.level_dimensions[-1]))


def test_making_a_cohort_again_leaves_its_files_untouched(tmp_path):
    """A re-run (e.g. `make demo` twice) must not change file times, or every run reading the cohort would
    see changed inputs (folder digests hash names, sizes and times)."""
    from mstar.run.fingerprint import files_digest, folder_files

    out = tmp_path / "cohort"
    make_cohort(out, SynthConfig(cases=4, seed=3), show_progress=False)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    times = {p: p.stat().st_mtime_ns for p in files}
    digest = files_digest(folder_files(out / "rna" / "cases"))
    make_cohort(out, SynthConfig(cases=4, seed=3), show_progress=False)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert {p: p.stat().st_mtime_ns for p in files} == times
    assert files_digest(folder_files(out / "rna" / "cases")) == digest


def test_different_seed_differs(tmp_path):
    a = draw_cohort_truth(20, 3, seed=1)
    b = draw_cohort_truth(20, 3, seed=2)
    assert [c.risk for c in a] != [c.risk for c in b]


def test_manifests_follow_the_upstream_schemas(tiny_cohort):
    m = tiny_cohort / "manifests"
    assert list(pd.read_csv(m / "diagnosis.csv").columns) == ["case", "slide", "label", "fold"]
    assert list(pd.read_csv(m / "molecular.csv").columns) == ["case", "slide", "label", "fold"]
    surv = pd.read_csv(m / "survival.csv")
    assert list(surv.columns) == ["Study", "ID", "Event", "Status", "WSI", "split"]
    assert set(surv["split"]) <= {"train", "validation", "test"} and surv["WSI"].str.endswith(".pt").all()
    mm = pd.read_csv(m / "multimodal_survival.csv")
    assert list(mm.columns) == ["Study", "ID", "Event", "Status", "WSI", "RNA", "split"]
    assert set(mm["split"]) <= {"train", "val", "test"}
    truth = json.loads((tiny_cohort / "truth.json").read_text())
    multi = [c for c in truth["cases"] if len(c["slides"]) > 1]
    diag = pd.read_csv(m / "diagnosis.csv").set_index("case")
    for c in multi:
        assert diag.loc[c["case_id"], "slide"] == ";".join(s["slide_id"] for s in c["slides"])
    for rna in mm["RNA"]:
        per_case = pd.read_csv(tiny_cohort / "rna" / "cases" / rna)
        assert list(per_case.columns) == ["Gene", "Value"]


def test_prompts_name_every_diagnosis_label(tiny_cohort):
    prompts = json.loads((tiny_cohort / "prompts" / "cancer_type.json").read_text())
    labels = set(pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv")["label"])
    assert set(prompts["0"]["classnames"]) == labels
    assert all("CLASSNAME" in t for t in prompts["0"]["templates"])


def test_the_example_knowledge_file_reads_and_covers_every_type(tiny_cohort):
    from mstar.data.knowledge import read_knowledge

    knowledge = read_knowledge(tiny_cohort / "prompts" / "knowledge.yaml")
    labels = set(pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv")["label"])
    assert set(knowledge.classnames) == labels
    tagged = [s.classes for s in knowledge.statements if s.classes]
    assert sorted(c for t in tagged for c in t) == sorted(list(labels) * 2)  # a description, a concept
    assert any(not s.classes for s in knowledge.statements)


def test_survival_censoring_and_risk_signal():
    cases = draw_cohort_truth(1500, 3, seed=3)
    status = np.array([c.status for c in cases])
    assert 0.33 < 1 - status.mean() < 0.5  # ~40 % censored
    risk = np.array([c.risk for c in cases])
    months = np.array([c.survival_months for c in cases])
    from sksurv.metrics import concordance_index_censored

    c_index = concordance_index_censored(status == 1, months, risk)[0]
    assert c_index > 0.65  # the latent risk orders survival well, but not perfectly
    assert np.corrcoef(risk, [c.tumour_fraction for c in cases])[0, 1] > 0.5
    mutant = np.array([c.marker for c in cases]) == 1
    assert risk[mutant].mean() - risk[~mutant].mean() > 0.4


def test_slides_and_rna_each_see_half_of_the_risk():
    """risk = shared + two independent halves; each half alone ranks survival worse than both together."""
    from sksurv.metrics import concordance_index_censored

    cases = draw_cohort_truth(3000, 3, seed=0)
    event = np.array([c.status == 1 for c in cases])
    months = np.array([c.survival_months for c in cases])
    risk, slide, rna = (np.array([getattr(c, k) for c in cases]) for k in ("risk", "risk_slide", "risk_rna"))
    shared = np.array([CANCER_TYPES[c.cancer_type].hazard_offset + 0.6 * c.marker for c in cases])
    np.testing.assert_allclose((slide - shared) + (rna - shared), risk - shared,
                               atol=2e-4)  # halves add up to z
    assert abs(np.corrcoef(slide - shared, rna - shared)[0, 1]) < 0.05  # independent halves
    c = {name: concordance_index_censored(event, months, score)[0]
         for name, score in (("slide", slide), ("rna", rna), ("both", slide + rna))}
    assert c["both"] > max(c["slide"], c["rna"]) + 0.03
    grade = np.array([c.grade for c in cases])
    assert np.corrcoef(grade, slide)[0, 1] > 0.7 and abs(np.corrcoef(grade, rna - shared)[0, 1]) < 0.1


def test_reports_state_type_grade_and_marker(tiny_cohort):
    truth = json.loads((tiny_cohort / "truth.json").read_text())
    reports = json.loads((tiny_cohort / "reports.json").read_text())
    assert "" in reports.values()  # one empty report, as real exports have
    without = [s["slide_id"] for c in truth["cases"] if not c["has_report"] for s in c["slides"]]
    assert without and not set(without) & set(reports)
    for case in truth["cases"]:
        for s in case["slides"]:
            text = reports.get(s["slide_id"])
            if not text:
                continue
            assert any(name in text for name in CANCER_TYPES[case["cancer_type"]].names)
            assert any(m in text for m in MARKER_SENTENCES[case["marker"]])
            assert not any(m in text for m in MARKER_SENTENCES[1 - case["marker"]])
            assert f"{case['size_cm']:.1f} cm" in text


def test_rna_modules_follow_the_latent_truth(tmp_path):
    from mstar.data.synthetic.genes import TP53_MODULE, TYPE_MODULES
    from mstar.data.synthetic.rna import expression_table

    cases = draw_cohort_truth(150, 3, seed=4)
    table = expression_table(cases, seed=5)
    by_case = {c.case_id: c for c in cases}
    cols = list(table.columns)
    for code, genes in TYPE_MODULES.items():
        score = table.loc[genes].mean()
        mine = [by_case[c].cancer_type == code for c in cols]
        assert score[mine].min() > score[[not m for m in mine]].max() - 0.5  # near-perfect separation
    tp53 = table.loc[TP53_MODULE].mean()
    mutant = np.array([by_case[c].marker for c in cols]) == 1
    assert tp53[~mutant].mean() - tp53[mutant].mean() > 1.0
    assert len(cols) < len(cases)  # some cases have no RNA


def test_types_are_visibly_different_in_the_slides(tiny_cohort):
    """A simple colour statistic of tumour regions separates the cancer types (nearest centroid, LOO)."""
    import cv2

    truth = json.loads((tiny_cohort / "truth.json").read_text())
    feats, labels = [], []
    for case in truth["cases"]:
        s = case["slides"][0]
        mask = cv2.imread(str(tiny_cohort / "masks" / f"{s['slide_id']}.png"), cv2.IMREAD_UNCHANGED)
        with open_slide(tiny_cohort / "slides" / f"{s['slide_id']}.svs") as slide:
            low = slide.read_downsampled(8.0 / slide.mpp)
        low = cv2.resize(low, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(low, cv2.COLOR_RGB2HSV).astype(float)
        tumour = mask == 2
        feats.append([hsv[..., c][tumour].mean() for c in range(3)] + [hsv[..., 2][tumour].std()])
        labels.append(case["cancer_type"])
    feats = np.array(feats)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    labels = np.array(labels)
    correct = 0
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        cents = {t: feats[others & (labels == t)].mean(0) for t in set(labels[others])}
        pred = min(cents, key=lambda t: np.linalg.norm(feats[i] - cents[t]))
        correct += pred == labels[i]
    assert correct / len(labels) >= 8 / 9
