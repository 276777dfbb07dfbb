"""Nearest-neighbour consensus re-ranking of generated reports."""

import pytest
import torch

from mstar.errors import MstarError
from mstar.eval.report_baseline import bleu4_against, ngram_counts
from mstar.models.report.consensus import NeighbourBank, consensus_pick, pooled_vector, rerank_reports

A = "diagnosis adenocarcinoma of the lung . grade 2 . no lymphovascular invasion ."
A2 = "diagnosis adenocarcinoma of the lung . grade 3 . no lymphovascular invasion ."
A3 = "diagnosis adenocarcinoma of the lung . grade 2 . lymphovascular invasion present ."
S = "diagnosis small cell carcinoma . necrosis present . ki67 90 % ."


def test_the_candidate_that_agrees_most_with_the_neighbours_wins():
    # the generated report describes the wrong class: the most typical neighbour report is returned
    assert consensus_pick(S, [A2, A, A3]) == A
    # a generated report closer to every neighbour than they are to each other is kept
    assert consensus_pick(A, [A2, A3]) == A


def test_neighbours_with_the_same_report_support_each_other():
    # two neighbours share a report: it is the consensus, not excluded for matching itself
    assert consensus_pick("x y z w v q", ["a b c d e f", "a b c d e f", "x y z w v u"]) == "a b c d e f"


def test_the_pick_maximises_bleu_against_the_other_neighbours():
    neighbours = [A2, A3, S]
    pick = consensus_pick("grade", neighbours)

    def score(j):  # a neighbour against the others; the generated report (j None) against all
        others = [ngram_counts(t) for i, t in enumerate(neighbours) if i != j]
        return bleu4_against(ngram_counts("grade" if j is None else neighbours[j]), others)

    best = max([None, *range(len(neighbours))], key=lambda j: score(j))
    assert pick == ("grade" if best is None else neighbours[best])


def test_neighbours_are_the_most_similar_pooled_slides(tmp_path):
    d = 8
    bags = [torch.zeros(3, d) for _ in range(4)]
    for i, b in enumerate(bags):
        b[:, i] = 1.0  # slide i points along axis i
    bank = NeighbourBank.build(bags, [A, A2, A3, S])
    query = torch.zeros(5, d)
    query[:, 3] = 1.0
    query[:, 1] = 0.5
    queries = bank.queries({"x": query})
    assert torch.allclose(queries["x"], pooled_vector(query))
    assert bank.nearest(queries["x"], 2) == [3, 1]
    bank.save(tmp_path / "bank.pt")
    again = NeighbourBank.load(tmp_path / "bank.pt")
    assert torch.equal(again.vectors, bank.vectors) and again.reports == bank.reports
    assert again.space == "pooled"
    # one neighbour is no consensus, and k = 0 is off: the generated report unchanged
    assert rerank_reports({"x": "grade"}, queries, bank, 1) == {"x": "grade"}
    assert rerank_reports({"x": "grade"}, queries, bank, 0) == {"x": "grade"}
    assert rerank_reports({"x": "grade"}, queries, bank, 2) == {"x": consensus_pick("grade", [S, A2])}
    with pytest.raises(MstarError, match="patch features of width 4 do not match.*8"):
        bank.nearest(torch.zeros(4), 2)
