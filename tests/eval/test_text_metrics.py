"""Report metrics pinned to pycocoevalcap's own scorers on fixed texts (METEOR only with Java)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from mstar.errors import MstarError
from mstar.eval import text_metrics
from mstar.eval.text_metrics import (
    _bleu_statistics,
    _meteor_jar,
    bleu_from_statistics,
    java_available,
    paired_bleu_difference,
    report_generation_metrics,
)

REFERENCES = {
    "r1": "invasive ductal carcinoma grade 2 . lymph nodes negative for metastasis .",
    "r2": "squamous cell carcinoma of the lung with keratin pearls . margins clear .",
    "r3": "clear cell renal cell carcinoma , fuhrman grade 3 . no lymphovascular invasion .",
    "r4": "benign breast tissue with fibrocystic change .",
    "r5": "invasive lobular carcinoma . tp53 mutated by immunohistochemistry .",
}
GENERATED = {
    "r1": "invasive ductal carcinoma grade 3 . lymph nodes negative .",
    "r2": "squamous cell carcinoma with keratin pearls . margins involved .",
    "r3": "clear cell renal cell carcinoma grade 2 .",
    "r4": "invasive ductal carcinoma .",
    "r5": "invasive lobular carcinoma of the breast .",
}
needs_java = pytest.mark.skipif(not java_available(), reason="METEOR 1.5 needs java on PATH")


def _coco(texts):
    return {k: [v] for k, v in texts.items()}


def test_bleu_rouge_cider_equal_pycocoevalcap():
    out = report_generation_metrics(GENERATED, REFERENCES, meteor=False)
    gts, res = _coco(REFERENCES), _coco(GENERATED)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for i in range(4):
        assert out.scores[f"bleu_{i + 1}"] == bleu[i]
    assert out.scores["rouge_l"] == Rouge().compute_score(gts, res)[0]
    assert out.scores["cider"] == Cider().compute_score(gts, res)[0]
    assert "meteor" not in out.scores and "meteor" not in out.implementation
    assert 0 < out.scores["bleu_4"] < out.scores["bleu_1"] < 1


def test_whitespace_runs_are_collapsed_only():
    messy = {k: "  " + v.replace(" . ", " .\n\n ") + "\t" for k, v in GENERATED.items()}
    assert report_generation_metrics(messy, REFERENCES, meteor=False).scores == \
        report_generation_metrics(GENERATED, REFERENCES, meteor=False).scores


def test_bleu_from_statistics_equals_scorer_on_resamples():
    gts, res = _coco(REFERENCES), _coco(GENERATED)
    keys = list(GENERATED)
    stats = _bleu_statistics(gts, res, keys)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(keys), len(keys))
        w = np.bincount(idx, minlength=len(keys))[None, :].astype(float)
        g = {f"{j}": gts[keys[i]] for j, i in enumerate(idx)}
        r = {f"{j}": res[keys[i]] for j, i in enumerate(idx)}
        ref, _ = Bleu(4).compute_score(g, r, verbose=0)
        np.testing.assert_allclose(bleu_from_statistics(stats, w)[0], ref, rtol=1e-12, atol=1e-15)


def test_bootstrap_without_meteor():
    out = report_generation_metrics(GENERATED, REFERENCES, meteor=False, n_resamples=200)
    for name, entry in out.ci.items():
        assert entry["value"] == out.scores[name] and entry["n"] == 5
        assert entry["ci_low"] <= entry["ci_high"]


def test_missing_java_is_reported_not_substituted(monkeypatch):
    monkeypatch.setattr(text_metrics.shutil, "which", lambda name: None)
    out = report_generation_metrics(GENERATED, REFERENCES)
    assert "meteor" not in out.scores
    assert any("METEOR omitted" in note and "java" in note for note in out.notes)


def test_id_mismatch_is_a_user_error():
    with pytest.raises(MstarError, match="unmatched: r5"):
        report_generation_metrics({k: v for k, v in GENERATED.items() if k != "r5"}, REFERENCES)


@needs_java
def test_meteor_equals_pycocoevalcap_jar_and_bootstrap_aggregates_like_the_jar():
    out = report_generation_metrics(GENERATED, REFERENCES, n_resamples=100)
    scorer = _meteor_jar().meteor  # pycocoevalcap's Meteor object (one JVM start for the session)
    gts, res = _coco(REFERENCES), _coco(GENERATED)
    assert out.scores["meteor"] == scorer.compute_score(gts, res)[0]
    assert "METEOR 1.5" in out.implementation["meteor"]
    assert out.ci["meteor"]["ci_low"] <= out.scores["meteor"] <= out.ci["meteor"]["ci_high"]
    jar = _meteor_jar()
    keys = list(GENERATED)
    stats = jar.statistics(gts, res, keys)
    idx = np.array([0, 0, 3, 4, 4])
    g = {f"{j}": gts[keys[i]] for j, i in enumerate(idx)}
    r = {f"{j}": res[keys[i]] for j, i in enumerate(idx)}
    assert jar.score_statistics(stats[idx].sum(axis=0)) == scorer.compute_score(g, r)[0]


def test_paired_bleu_difference_equals_the_two_corpus_scores_and_pairs_the_resamples():
    baseline = {k: "invasive ductal carcinoma ." for k in REFERENCES}
    out = paired_bleu_difference(GENERATED, baseline, REFERENCES, n_resamples=300, seed=1)
    gts = _coco(REFERENCES)
    g = Bleu(4).compute_score(gts, _coco(GENERATED), verbose=0)[0][3]
    b = Bleu(4).compute_score(gts, _coco(baseline), verbose=0)[0][3]
    assert np.isclose(out["bleu4_generated"]["value"], g) and np.isclose(out["bleu4_baseline"]["value"], b)
    assert np.isclose(out["difference"]["value"], g - b)
    d = out["difference"]
    assert d["ci_low"] <= d["value"] <= d["ci_high"] and d["n"] == 5
    same = paired_bleu_difference(GENERATED, GENERATED, REFERENCES, n_resamples=100)["difference"]
    assert same["value"] == same["ci_low"] == same["ci_high"] == 0.0  # paired: identical systems never differ
