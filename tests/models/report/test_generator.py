from __future__ import annotations

import math

import pytest
import torch

from mstar.errors import MstarError
from mstar.models.report.decoding import has_repeated_trigram
from mstar.models.report.encoder import HierarchicalEncoder
from mstar.models.report.generator import DEFAULTS, ReportGenerator, left_align
from mstar.models.report.memory import CrossModalMemory, prototype_indices

TINY = dict(in_dim=12, d_vf=24, d_model=16, d_ff=32, n_heads=2, num_layers=2, encoder_layers=2, region_size=6,
            cmm_size=20, cmm_dim=16, topk=5, prototype_num=4, max_len=12)


def tiny_model(vocab: int = 30, seed: int = 0) -> ReportGenerator:
    torch.manual_seed(seed)
    return ReportGenerator(vocab, **TINY).eval()


def test_forward_shapes_and_defaults():
    model = tiny_model()
    feats, tokens = torch.randn(3, 17, 12), torch.randint(4, 30, (3, 9))
    assert model(feats, None, tokens).shape == (3, 9, 30)
    assert model.config == {"vocab_size": 30, **{**DEFAULTS, **TINY}}
    assert DEFAULTS["d_model"] == 512 and DEFAULTS["num_layers"] == 3 and DEFAULTS["n_heads"] == 8
    with pytest.raises(MstarError, match="unknown report-model option"):
        ReportGenerator(30, d_modle=8)


def test_padding_does_not_change_a_bag():
    model = tiny_model()
    short, long = torch.randn(1, 7, 12), torch.randn(1, 23, 12)
    feats = torch.zeros(2, 23, 12)
    feats[0, :7], feats[1] = short[0], long[0]
    feats[0, 7:] = 100.0  # garbage in the padding must not matter
    mask = torch.zeros(2, 23, dtype=torch.bool)
    mask[0, :7], mask[1] = True, True
    tokens = torch.randint(4, 30, (2, 6))
    batched = model(feats, mask, tokens)
    torch.testing.assert_close(batched[0], model(short, None, tokens[:1])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], model(long, None, tokens[1:])[0], atol=1e-5, rtol=1e-5)
    assert model.generate(feats, mask, beam_size=2)[0] == model.generate(short, beam_size=2)[0]


def test_mask_holes_are_moved_out_of_the_way():
    feats = torch.arange(5.0)[None, :, None].expand(1, 5, 2)
    mask = torch.tensor([[False, True, False, True, True]])
    aligned, amask = left_align(feats, mask)
    assert aligned[0, :, 0].tolist() == [1.0, 3.0, 4.0, 0.0, 2.0]
    assert amask.tolist() == [[True] * 3 + [False] * 2]
    model = tiny_model()
    tokens = torch.randint(4, 30, (1, 5))
    x = torch.randn(1, 5, 12)
    compact = model(x[:, [1, 3, 4]], None, tokens)
    torch.testing.assert_close(model(x, mask, tokens), compact, atol=1e-5, rtol=1e-5)


def test_bags_shorter_than_a_region_and_region_count():
    enc = HierarchicalEncoder(d_model=8, n_heads=2, d_ff=16, region_size=5).eval()
    for n, regions in ((1, 1), (4, 1), (5, 2), (9, 3)):
        out, ok = enc(torch.randn(2, n, 8), torch.ones(2, n, dtype=torch.bool))
        assert out.shape == (2, regions, 8) and ok.all()
        assert torch.isfinite(out).all()
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :2], mask[1] = True, True
    _, ok = enc(torch.randn(2, 9, 8), mask)
    assert ok.tolist() == [[True, False, False], [True, True, True]]  # padded-only regions are masked


def test_empty_bag_and_wrong_width_are_user_errors():
    model = tiny_model()
    with pytest.raises(MstarError, match="no patch features"):
        mask = torch.tensor([[True] * 4, [False] * 4])
        model(torch.randn(2, 4, 12), mask, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(MstarError, match=r"\(B, N, 12\)"):
        model.generate(torch.randn(1, 4, 7))


def test_generate_restores_mode_and_respects_limits():
    model = tiny_model().train()
    seqs = model.generate(torch.randn(3, 10, 12), beam_size=3, max_len=10)
    assert model.training and len(seqs) == 3
    for seq in seqs:
        assert len(seq) <= 10 and all(4 <= t < 30 or t == 3 for t in seq)  # no <pad>/<bos>/<eos>
        assert not has_repeated_trigram(seq)


def test_memory_keeps_only_topk_slots():
    torch.manual_seed(0)
    mem = CrossModalMemory(d_model=8, n_heads=2, cmm_size=10, cmm_dim=8, topk=3, dropout=0.0)
    query = torch.randn(2, 4, 8)
    got = mem(query)
    # reference: explicit gather of the top-k slots per query and head
    q = mem.q_proj(query).view(2, 4, 2, 4).transpose(1, 2)  # (B, h, L, dh)
    k = mem.k_proj(mem.memory).view(10, 2, 4).transpose(0, 1)  # (h, S, dh)
    v = mem.v_proj(mem.memory).view(10, 2, 4).transpose(0, 1)
    scores = torch.einsum("bhld,hsd->bhls", q, k) / math.sqrt(4)
    top, idx = scores.topk(3, dim=-1)
    vals = v[torch.arange(2)[None, :, None, None], idx]  # (B, h, L, 3, dh)
    ref = torch.einsum("bhlk,bhlkd->bhld", top.softmax(-1), vals).transpose(1, 2).reshape(2, 4, 8)
    torch.testing.assert_close(got, mem.out_proj(ref))


def test_prototype_indices_are_evenly_spaced():
    idx = prototype_indices(torch.tensor([10, 3, 1]), 4)
    assert idx.tolist() == [[0, 3, 6, 9], [0, 0, 1, 2], [0, 0, 0, 0]]
