import numpy as np
import pytest

from mstar.errors import MstarError
from mstar.zeroshot.few_shot import draw_support
from mstar.zeroshot.few_shot_methods import linear_probe, prototype_scores, simpleshot, text_prototypes
from mstar.zeroshot.scoring import choose_j, softmax, topj_pool


def test_topj_pool_is_mean_of_the_j_largest_per_class():
    logits = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4], [0.7, 0.0]])
    assert np.allclose(topj_pool(logits, 1), [0.7, 0.9])
    assert np.allclose(topj_pool(logits, 2), [0.6, 0.65])
    assert np.allclose(topj_pool(logits, 100), logits.mean(0))  # j capped at the bag size


def test_choose_j_uses_the_given_split_only_and_breaks_ties_to_small_j():
    y = np.array([0, 0, 1, 1])
    good = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    bad = good[:, ::-1]
    j, table = choose_j({1: bad, 5: good, 10: good}, y, ["a", "b"])
    assert j == 5 and table[1]["balanced_accuracy"] == 0.0 and table[10]["balanced_accuracy"] == 1.0
    with pytest.raises(MstarError, match="--top-j"):
        choose_j({1: good[:0]}, y[:0], ["a", "b"])


def test_softmax_temperature():
    p = softmax(np.array([[0.2, 0.1]]), 0.07)
    assert np.isclose(p.sum(), 1) and np.isclose(p[0, 0], 1 / (1 + np.exp(-0.1 / 0.07)))


def test_upstream_text_prototypes_average_the_top_patches_of_each_class_pool():
    e = np.eye(4, dtype=np.float32)
    support = [e[[0, 1]], e[[2]], e[[3]]]  # two cases of class 0, one of class 1
    scores = [np.array([0.9, 0.1]), np.array([0.5]), np.array([0.8])]
    protos = text_prototypes(support, scores, [0, 0, 1], 2, top=2, rule="upstream")
    assert np.allclose(protos[0], (e[0] + e[2]) / 2)  # top-2 of class 0's pool: scores 0.9 and 0.5
    assert np.allclose(protos[1], e[3])
    s = prototype_scores([e[[0, 3]].astype(np.float16)], protos, [1])[1]
    assert np.allclose(s, [[0.5, 1.0]])


def test_per_case_prototypes_weigh_every_support_case_the_same_and_have_unit_norm():
    e = np.eye(4, dtype=np.float32)
    # class 0: case A has many text-similar patches (e0), case B one (e2); upstream's pooled top-2 would be
    # two patches of A; per case, A and B count the same
    support = [e[[0, 0, 0, 1]], e[[2, 1]], 3 * e[[3]]]
    scores = [np.array([0.9, 0.9, 0.9, 0.1]), np.array([0.5, 0.2]), np.array([0.8])]
    protos = text_prototypes(support, scores, [0, 0, 1], 2, top=2)
    want0 = (e[0] + (e[2] + e[1]) / 2) / 2  # mean of A's top-2 mean (e0) and B's ((e2 + e1) / 2)
    assert np.allclose(protos[0], want0 / np.linalg.norm(want0))
    assert np.allclose(protos[1], e[3])  # unit norm whatever the patches' scale
    up = text_prototypes(support, scores, [0, 0, 1], 2, top=2, rule="upstream")
    assert np.allclose(up[0], e[0]) and np.allclose(up[1], 3 * e[3])
    with pytest.raises(ValueError, match="prototype rule"):
        text_prototypes(support, scores, [0, 0, 1], 2, rule="mean")


def test_simpleshot_and_linear_probe_on_separable_embeddings():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 3
    x = np.concatenate([centers[c] + 0.3 * rng.normal(size=(6, 8)) for c in range(3)])
    y = np.repeat(np.arange(3), 6)
    q = np.concatenate([centers[c] + 0.3 * rng.normal(size=(4, 8)) for c in range(3)])
    yq = np.repeat(np.arange(3), 4)
    s = simpleshot(x, y, q, 3, center=x.mean(0))
    assert (s.argmax(1) == yq).all()
    probs, c_used = linear_probe(x, y, q, 3, seed=0)  # k = 6: C chosen by inner CV
    assert (probs.argmax(1) == yq).all() and np.allclose(probs.sum(1), 1) and c_used > 0
    probs1, c1 = linear_probe(x[[0, 6, 12]], y[[0, 6, 12]], q, 3)  # k = 1: no inner CV, C = 1
    assert c1 == 1.0 and probs1.shape == (12, 3)


def test_support_draws_are_seeded_and_balanced():
    y = np.array([0, 1, 2] * 5)
    a = draw_support(y, 2, 3, np.random.default_rng([0, 2, 1]))
    b = draw_support(y, 2, 3, np.random.default_rng([0, 2, 1]))
    c = draw_support(y, 2, 3, np.random.default_rng([0, 2, 2]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [2, 2, 2] and len(set(a)) == 6
