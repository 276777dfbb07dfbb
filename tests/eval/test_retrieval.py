"""Retrieval: a hand-computed example, parity of AP with scikit-learn, exact chance levels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mstar.errors import MstarError
from mstar.eval.retrieval import (
    chance_levels,
    relevance_from_labels,
    relevance_paired,
    retrieval_metrics,
    retrieval_metrics_ci,
    retrieval_per_query,
)


def test_hand_computed_label_retrieval():
    sim = np.array([
        [0.9, 0.8, 0.1, 0.2],  # a: relevant g0 (rank 1), g2 (rank 4) -> AP (1 + 2/4) / 2
        [0.9, 0.1, 0.8, 0.7],  # b: relevant g1 at rank 4 -> AP 1/4
        [0.5, 0.5, 0.5, 0.5],  # c: all tied, gallery order kept -> g3 at rank 4 -> AP 1/4
    ])
    rel = relevance_from_labels(["a", "b", "c"], ["a", "b", "a", "c"])
    out = retrieval_metrics(sim, rel, ks=(1, 2, 5))
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["recall@2"] == pytest.approx(1 / 3)
    assert out["recall@5"] == 1.0  # K beyond the gallery size means the whole gallery
    assert out["map"] == pytest.approx((0.75 + 0.25 + 0.25) / 3)


def test_paired_perfect_and_exclude_self():
    n = 6
    assert retrieval_metrics(np.eye(n), relevance_paired(n), ks=(1,)) == {"recall@1": 1.0, "map": 1.0}
    labels = ["a", "a", "b", "b"]
    sim = np.array([[1, 0.2, 0.9, 0.1], [0.2, 1, 0.1, 0.9], [0.9, 0.1, 1, 0.2], [0.1, 0.9, 0.2, 1.0]])
    out = retrieval_metrics(sim, relevance_from_labels(labels, labels), ks=(1, 3), exclude_self=True)
    # without itself, each query's single same-label item is ranked 2nd of 3
    assert out == {"recall@1": 0.0, "recall@3": 1.0, "map": 0.5}


def test_average_precision_matches_sklearn_without_ties():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(30, 40))
    rel = relevance_from_labels(rng.integers(0, 4, 30), rng.integers(0, 4, 40))
    per_query = retrieval_per_query(sim, rel)
    for q in range(30):
        if rel[q].any():
            assert per_query["map"][q] == pytest.approx(average_precision_score(rel[q], sim[q]), abs=1e-12)


def test_queries_without_relevant_items_are_left_out():
    sim = np.array([[0.9, 0.1], [0.2, 0.8]])
    rel = np.array([[True, False], [False, False]])
    out = retrieval_metrics_ci(sim, rel, ks=(1,), n_resamples=50)
    assert out["map"]["value"] == 1.0 and out["map"]["n"] == 1


def test_ci_over_queries():
    rng = np.random.default_rng(1)
    n = 200
    emb = rng.normal(size=(n, 16))
    sim = emb @ (emb + rng.normal(scale=1.5, size=(n, 16))).T
    out = retrieval_metrics_ci(sim, relevance_paired(n), n_resamples=500)
    for name, entry in out.items():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
    assert out["recall@1"]["value"] > chance_levels(relevance_paired(n))["recall@1"]


@pytest.mark.parametrize(("g", "r"), [(5, 1), (5, 2), (6, 3)])
def test_chance_levels_are_exact_over_all_rankings(g, r):
    rel = np.zeros((1, g), dtype=bool)
    rel[0, :r] = True
    hits, aps = {1: [], 3: []}, []
    for perm in itertools.permutations(range(g)):
        per_query = retrieval_per_query(-np.array(perm, dtype=float)[None, :], rel, ks=(1, 3))
        aps.append(per_query["map"][0])
        for k in hits:
            hits[k].append(per_query[f"recall@{k}"][0])
    chance = chance_levels(rel, ks=(1, 3))
    assert chance["map"] == pytest.approx(np.mean(aps), abs=1e-12)
    for k in hits:
        assert chance[f"recall@{k}"] == pytest.approx(np.mean(hits[k]), abs=1e-12)


def test_paired_chance_and_errors():
    chance = chance_levels(relevance_paired(100), ks=(1, 10))
    assert chance["recall@1"] == pytest.approx(0.01) and chance["recall@10"] == pytest.approx(0.10)
    with pytest.raises(MstarError, match="square"):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool), exclude_self=True)


def test_exclusion_mask_equals_scoring_each_group_on_its_own():
    """Retrieval within a cancer type: a per-query gallery mask gives what each type's sub-matrix gives."""
    from mstar.eval.retrieval import chance_levels, relevance_paired, retrieval_per_query

    rng = np.random.default_rng(0)
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    sim = rng.normal(size=(9, 9)) + 2 * (groups[:, None] == groups[None, :])
    rel = relevance_paired(9)
    other = groups[:, None] != groups[None, :]
    masked = retrieval_per_query(sim, rel, ks=(1, 2), exclude=other)
    for g in range(3):
        idx = np.flatnonzero(groups == g)
        alone = retrieval_per_query(sim[np.ix_(idx, idx)], rel[np.ix_(idx, idx)], ks=(1, 2))
        for key in ("recall@1", "recall@2", "map"):
            np.testing.assert_allclose(masked[key][idx], alone[key])
    chance = chance_levels(rel, ks=(1, 2), exclude=other)
    assert chance["recall@1"] == pytest.approx(np.mean([1 / 3] * 3 + [1 / 4] * 4 + [1 / 2] * 2))
    with pytest.raises(MstarError, match="exclusion mask has shape"):
        retrieval_per_query(sim, rel, exclude=other[:3])
