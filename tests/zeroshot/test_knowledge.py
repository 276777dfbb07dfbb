"""The knowledge file: read once by zero-shot, the clinical check and `mstar predict`; its statements ranked
per slide by a stage-1 model, and updated without retraining."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mstar.data.knowledge import read_knowledge
from mstar.data.prompts import read_classnames, read_prompts
from mstar.errors import MstarError

pytestmark = pytest.mark.slow  # shares the ~30 s trained stage-1 fixture

KNOWLEDGE = """
classes:
  BRCA:
    names: [invasive ductal carcinoma]
    synonyms: [invasive breast carcinoma of no special type]
    description: Invasive ductal carcinoma of the breast, a lumpectomy or mastectomy specimen.
    source: WHO Classification of Breast Tumours, 5th ed. (2019)
  LUSC:
    names: [squamous cell carcinoma of the lung]
    description: Squamous cell carcinoma of the lung, resected by lobectomy.
    source: WHO Classification of Thoracic Tumours, 5th ed. (2021)
  KIRC:
    names: [clear cell renal cell carcinoma]
    description: Clear cell renal cell carcinoma of the kidney, a nephrectomy specimen.
    source: WHO Classification of Urinary and Male Genital Tumours, 5th ed. (2022)
concepts:
  - name: margins
    statement: Surgical margins are free of tumor.
    source: CAP protocol
"""


def _slides(cohort: dict, split: str = "test"):
    from mstar.features.io import load_features

    table = pd.read_csv(cohort["manifest"])
    table = table[table["fold"] == split]
    for slide, label in zip(table["slide"], table["label"]):
        feats, _, _ = load_features(cohort["features"] / f"{slide}.h5")
        yield slide, label, torch.as_tensor(np.asarray(feats, np.float32))


def test_zero_shot_and_the_clinical_check_read_the_same_file(tmp_path):
    path = tmp_path / "knowledge.yaml"
    path.write_text(KNOWLEDGE)
    prompts = read_prompts(path)
    assert prompts.classes == ["BRCA", "LUSC", "KIRC"]
    assert read_classnames(path)["BRCA"] == ["invasive ductal carcinoma",
                                             "invasive breast carcinoma of no special type"]
    k = read_knowledge(path)
    assert [s.concept for s in k.statements] == ["invasive ductal carcinoma",
                                                 "squamous cell carcinoma of the lung",
                                                 "clear cell renal cell carcinoma", "margins"]
    assert k.statements[1].source.startswith("WHO Classification of Thoracic")


@pytest.mark.parametrize("text, match", [
    ("classes: {A: {synonyms: [x]}}", r"classes\['A'\].names must be a list"),
    ("classes: {A: {names: [a]}}\nconcepts: [{name: n, statement: s, classes: [B]}]",
     r"concepts\[0\].classes names unknown classes \['B'\]"),
    ("classes: {A: {names: [a]}}\nconcepts: [{name: n}]", r"concepts\[0\].statement must be a non-empty"),
    ("classes: [", "not valid YAML"),
    ("classes: {A: {names: [a], descripton: d}}",
     r"classes\['A'\]: unknown key 'descripton'; did you mean 'description'\?"),
    ("classes: {A: {names: [a]}}\nconcepts: [{name: n, statement: s, sources: x}]",
     r"concepts\[0\]: unknown key 'sources'; did you mean 'source'\?"),
    ("classes: {A: {names: [a]}}\nconcept: []", r"k.yaml: unknown key 'concept'; did you mean 'concepts'\?"),
])
def test_a_bad_knowledge_file_is_one_line_naming_the_field(tmp_path, text, match):
    path = tmp_path / "k.yaml"
    path.write_text(text)
    with pytest.raises(MstarError, match=match):
        read_knowledge(path)


def test_statements_of_the_slides_type_rank_first_and_updates_need_no_retraining(trained_checkpoint,
                                                                                 zs_cohort, tmp_path):
    from mstar.eval.bootstrap import bootstrap_ci
    from mstar.predict.knowledge import KnowledgeRanker

    path = tmp_path / "knowledge.yaml"
    path.write_text(KNOWLEDGE)
    ranker = KnowledgeRanker.open(str(path), str(trained_checkpoint), top=4)
    hits = []
    for _, label, feats in _slides(zs_cohort):
        cited = ranker.cite(feats, np.ones(len(feats)))
        types = [c for c in cited if c["classes"]]  # the three class descriptions, best first
        hits.append(float(types[0]["classes"] == [label]))
    ci = bootstrap_ci(np.mean, np.array(hits), n_resamples=1000, seed=0)
    # chance: 1/3 of the slides get their own type's statement first
    assert ci["ci_low"] > 1 / 3, ci
    # a new concept is cited at once (no retraining): the statement closest to a KIRC slide is now it
    path.write_text(KNOWLEDGE + "  - name: clear cells\n    statement: clear cell renal cell carcinoma\n"
                                "    source: a textbook\n    classes: [KIRC]\n")
    updated = KnowledgeRanker.open(str(path), str(trained_checkpoint), top=5)
    kirc = [f for _, label, f in _slides(zs_cohort) if label == "KIRC"]
    firsts = [updated.cite(f, np.ones(len(f)))[0]["concept"] for f in kirc]
    assert "clear cells" in firsts and all(c["concept"] != "clear cells"
                                           for f in kirc for c in ranker.cite(f, np.ones(len(f))))
    # a slide predicted LUSC is never given a statement about another class only (the KIRC concept, the
    # BRCA and KIRC descriptions); untagged ones stay; a class the file does not know filters nothing
    cited = updated.cite(kirc[0], np.ones(len(kirc[0])), predicted="LUSC")
    assert {c["concept"] for c in cited} == {"squamous cell carcinoma of the lung", "margins"}
    assert len(updated.cite(kirc[0], np.ones(len(kirc[0])), predicted="OTHER")) == 5


def test_predict_cites_the_knowledge_on_each_slide_page(trained_checkpoint, zs_cohort, tmp_path):
    from mstar.predict.config import PredictConfig
    from mstar.predict.run import predict
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    run = train_task(TrainConfig(task="classify", manifest=str(zs_cohort["manifest"]),
                                 features=str(zs_cohort["features"]), out=str(tmp_path / "runs"), epochs=1,
                                 bootstrap=10, model_args={"dim": 8, "attn_dim": 8}), progress=False)["run"]
    path = tmp_path / "knowledge.yaml"
    path.write_text(KNOWLEDGE)
    result = predict(PredictConfig(inputs=[str(zs_cohort["features"])], run=run, out=str(tmp_path / "pred"),
                                   knowledge=str(path), stage1=str(trained_checkpoint), top_statements=2),
                     progress=False)
    slide = result["predictions"]["slide"].iloc[0]
    page = (tmp_path / "pred" / "slides" / f"{slide}.html").read_text()
    assert "Supporting knowledge" in page and "source: WHO Classification" in page
    assert "not found: no heatmap" in page  # these bags have no slide file: evidence without pictures
    assert (tmp_path / "pred" / "evidence" / f"{slide}.geojson").is_file()
    with pytest.raises(MstarError, match="'knowledge' needs 'stage1'"):
        PredictConfig(inputs=["x"], run=run, out="o", knowledge=str(path)).validate()


def test_editing_the_knowledge_file_re_ranks_the_citations_of_a_finished_prediction(trained_checkpoint,
                                                                                   zs_cohort, tmp_path):
    """The knowledge base is updated without predicting again; any other change still needs --overwrite."""
    import json

    from mstar.predict.config import PredictConfig
    from mstar.predict.run import predict
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    run = train_task(TrainConfig(task="classify", manifest=str(zs_cohort["manifest"]),
                                 features=str(zs_cohort["features"]), out=str(tmp_path / "runs"), epochs=1,
                                 bootstrap=10, model_args={"dim": 8, "attn_dim": 8}), progress=False)["run"]
    path = tmp_path / "knowledge.yaml"
    path.write_text(KNOWLEDGE)
    out = tmp_path / "pred"

    def go(**kw):
        args = dict(inputs=[str(zs_cohort["features"])], run=run, out=str(out), knowledge=str(path),
                    stage1=str(trained_checkpoint), top_statements=4)
        return predict(PredictConfig(**{**args, **kw}), progress=False)

    first = go()
    slide = first["predictions"]["slide"].iloc[0]
    evidence = out / "evidence" / f"{slide}.csv"
    stamp, table = evidence.stat().st_mtime_ns, (out / "predictions.csv").read_bytes()
    path.write_text(KNOWLEDGE + "  - name: clear cells\n    statement: clear cell renal cell carcinoma\n"
                                "    source: a textbook\n")  # untagged: a candidate for every slide
    second = go()
    assert second["recited"] == len(first["predictions"]) and second["finished_before"]
    assert (out / "predictions.csv").read_bytes() == table  # the predictions were not recomputed
    assert evidence.stat().st_mtime_ns == stamp  # the evidence was not recomputed
    citing = [s for s in second["predictions"]["slide"] if "clear cells" in
              [c["concept"] for c in json.loads((out / "evidence" / f"{s}.json").read_text())["knowledge"]]]
    assert citing  # the new statement is cited without --overwrite, on the slide pages too
    assert "source: a textbook" in (out / "slides" / f"{citing[0]}.html").read_text()
    assert go()["finished_before"] and "recited" not in go()  # unchanged now: reported as finished
    dropped = go(knowledge=None, stage1=None)
    assert "knowledge" not in json.loads((out / "evidence" / f"{slide}.json").read_text())
    assert dropped["recited"] == len(first["predictions"])
    with pytest.raises(MstarError, match="other settings or inputs .*top_k"):
        go(top_k=3)
