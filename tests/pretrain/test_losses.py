"""Stage-1 losses against hand-written references and constructed examples with known values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mstar.pretrain.losses import (
    LogitScale,
    clip_loss,
    multimodal_contrastive_loss,
    multimodal_triplet,
    stage1_loss,
    triplet_batch_hard,
)


def _reference_clip(a: list[list[float]], b: list[list[float]], scale: float) -> float:
    """Symmetric InfoNCE written out with plain Python loops."""
    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    a, b = [unit(v) for v in a], [unit(v) for v in b]
    sim = [[scale * sum(x * y for x, y in zip(ai, bj)) for bj in b] for ai in a]
    n = len(a)
    a2b = -sum(sim[i][i] - math.log(sum(math.exp(sim[i][j]) for j in range(n))) for i in range(n)) / n
    b2a = -sum(sim[i][i] - math.log(sum(math.exp(sim[j][i]) for j in range(n))) for i in range(n)) / n
    return 0.5 * (a2b + b2a)


def test_clip_loss_matches_hand_written_reference():
    a = [[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 3.0, 1.0]]
    b = [[0.9, 0.2, 1.5], [1.0, -0.5, 0.5], [-0.2, 1.0, 0.3]]
    got = clip_loss(torch.tensor(a), torch.tensor(b), 10.0)
    assert got.ok and got.n == 3
    assert got.loss.item() == pytest.approx(_reference_clip(a, b, 10.0), rel=1e-5)


def test_aligned_pairs_beat_shuffled_pairs():
    torch.manual_seed(0)
    a = torch.randn(16, 8)
    b = a + 0.05 * torch.randn(16, 8)
    aligned = clip_loss(a, b, 14.3).loss
    shuffled = clip_loss(a, b[torch.roll(torch.arange(16), 1)], 14.3).loss
    assert aligned < 0.1 < math.log(16) < shuffled


def test_rows_missing_a_modality_do_not_change_the_loss_of_the_others():
    torch.manual_seed(1)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    has_b = torch.tensor([True, False, True, True, False, True])
    b_garbage = b.clone()
    b_garbage[~has_b] = float("nan")  # absent rows may hold anything
    got = clip_loss(a, b_garbage, 5.0, None, has_b)
    want = clip_loss(a[has_b], b[has_b], 5.0)
    assert got.n == 4 and got.loss.item() == pytest.approx(want.loss.item(), rel=1e-6)
    a.requires_grad_(True)
    clip_loss(a, b_garbage, 5.0, None, has_b).loss.backward()
    assert torch.isfinite(a.grad).all() and (a.grad[~has_b] == 0).all()


def test_fewer_than_two_pairs_give_an_exact_zero_with_a_flag():
    a = torch.randn(3, 4, requires_grad=True)
    got = clip_loss(a, torch.randn(3, 4), 5.0, torch.tensor([True, False, False]), None)
    assert not got.ok and got.n == 1 and got.loss.item() == 0.0
    got.loss.backward()
    assert (a.grad == 0).all()


def test_logit_scale_starts_at_one_over_007_and_is_capped_at_100():
    scale = LogitScale()
    assert scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        scale.log_scale.fill_(math.log(500.0))
    assert scale().item() == pytest.approx(100.0)
    assert not LogitScale(learnable=False).log_scale.requires_grad


def test_multimodal_terms_use_only_available_pairs():
    torch.manual_seed(2)
    zs, zr, zg = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    has_r = torch.tensor([True, True, False, True, True])
    has_g = torch.tensor([True, False, True, True, False])
    out = multimodal_contrastive_loss(zs, zr, zg, has_r, has_g, 10.0)
    assert out["slide_report"].item() == pytest.approx(clip_loss(zs[has_r], zr[has_r], 10.0).loss.item())
    assert out["slide_gene"].item() == pytest.approx(clip_loss(zs[has_g], zg[has_g], 10.0).loss.item())
    both = has_r & has_g
    assert out["report_gene"].item() == pytest.approx(clip_loss(zr[both], zg[both], 10.0).loss.item())
    assert out["loss"].item() == pytest.approx(sum(out[k].item() for k in ("slide_report", "slide_gene",
                                                                             "report_gene")))
    counts = (out["n_slide_report"].item(), out["n_slide_gene"].item(), out["n_report_gene"].item())
    assert counts == (4, 3, 2)


def test_triplet_on_a_constructed_example():
    # 1-d points: A at 0 and 1, B at 1.5 and 4, a lone C at 10 (no positive: excluded).
    emb = torch.tensor([[0.0], [1.0], [1.5], [4.0], [10.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    # anchors: 0 -> max(0, 1-1.5+.3)=0; 1 -> 1-0.5+.3=0.8; 2 -> 2.5-0.5+.3=2.3; 3 -> max(0, 2.5-3+.3)=0
    got = triplet_batch_hard(emb, labels, margin=0.3)
    assert got.n == 4 and got.loss.item() == pytest.approx((0.8 + 2.3) / 4, rel=1e-6)
    single_class = triplet_batch_hard(emb[:2], labels[:2])
    assert not single_class.ok and single_class.loss.item() == 0.0


def test_multimodal_triplet_equals_concatenation_when_complete():
    torch.manual_seed(3)
    parts = [torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 4)]
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    concat = torch.cat([F.normalize(p, dim=-1) for p in parts], dim=1)
    want = triplet_batch_hard(concat, labels)
    got = multimodal_triplet(parts, torch.ones(8, 3, dtype=torch.bool), labels)
    assert got.n == want.n == 8 and got.loss.item() == pytest.approx(want.loss.item(), rel=1e-5)


def test_multimodal_triplet_rescales_distances_over_shared_modalities():
    # Two modalities, 2-d unit vectors. Sample 1 has no second modality (its row holds NaN).
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    r = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.0, 1.0], [0.0, -1.0]])
    present = torch.tensor([[True, True], [True, False], [True, True], [True, True]])
    labels = torch.tensor([0, 0, 1, 1])
    got = multimodal_triplet([s, r], present, labels, margin=0.3)

    def d(i, j):
        shared = [k for k in range(2) if present[i, k] and present[j, k]]
        sq = sum(((p[i] - p[j]) ** 2).sum().item() for k, p in enumerate((s, r)) if k in shared)
        return math.sqrt(sq * 2 / len(shared))

    want = []
    for a in range(4):
        pos = max(d(a, p) for p in range(4) if p != a and labels[p] == labels[a])
        neg = min(d(a, q) for q in range(4) if labels[q] != labels[a])
        want.append(max(0.0, pos - neg + 0.3))
    assert got.n == 4 and got.loss.item() == pytest.approx(sum(want) / 4, rel=1e-5)
    r.requires_grad_(True)
    multimodal_triplet([s, r], present, labels).loss.backward()
    assert torch.isfinite(r.grad).all() and (r.grad[1] == 0).all()


def test_stage1_total_is_contrastive_plus_weighted_triplet():
    torch.manual_seed(4)
    z = [torch.randn(6, 4) for _ in range(3)]
    has_r = torch.tensor([True] * 5 + [False])
    has_g = torch.tensor([True, False] * 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = stage1_loss(*z, has_r, has_g, labels, 14.0, triplet_weight=0.5)
    assert out["loss"].item() == pytest.approx(out["contrastive"].item() + 0.5 * out["triplet"].item())
    assert out["n_triplet"].item() == 6 and out["triplet"].item() > 0
