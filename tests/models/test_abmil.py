"""ABMIL: attention pooling, batching with a padding mask, the gated variant."""

from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.models.abmil import ABMIL


def _model(**kw) -> ABMIL:
    torch.manual_seed(0)
    return ABMIL(in_dim=16, dim=8, attn_dim=4, **kw).eval()


@pytest.mark.parametrize("gated", [False, True])
def test_embedding_is_the_attention_weighted_mean_of_instance_embeddings(gated):
    model = _model(gated=gated)
    x = torch.randn(2, 5, 16)
    out = model(x)
    assert out.embedding.shape == (2, 8) and out.tokens.shape == (2, 5, 8) and out.attention.shape == (2, 5)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(out.embedding, torch.einsum("bn,bne->be", out.attention, out.tokens))
    torch.testing.assert_close(out.tokens, model.feature(x))


def test_gated_attention_uses_both_branches():
    model = _model(gated=True)
    keys = set(model.state_dict())
    gated_keys = {f"attention.attention_{b}" for b in ("a.0.weight", "b.0.weight", "c.weight")}
    assert gated_keys <= keys
    h = model.feature(torch.randn(1, 3, 16))
    att = model.attention
    expected = att.attention_c(torch.tanh(att.attention_a[0](h)) * torch.sigmoid(att.attention_b[0](h)))
    torch.testing.assert_close(att(h), expected)


def test_equal_length_batch_equals_each_bag_alone():
    model = _model()
    x = torch.randn(3, 7, 16)
    batched = model(x)
    for b in range(3):
        alone = model(x[b : b + 1])
        torch.testing.assert_close(batched.embedding[b], alone.embedding[0])
        torch.testing.assert_close(batched.attention[b], alone.attention[0])


@pytest.mark.parametrize("gated", [False, True])
def test_padded_patches_have_no_influence_even_when_they_hold_nan(gated):
    model = _model(gated=gated)
    bag_a, bag_b = torch.randn(4, 16), torch.randn(6, 16)
    x = torch.full((2, 6, 16), float("nan"))
    x[0, :4], x[1] = bag_a, bag_b
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    out = model(x, mask)
    alone_a = model(bag_a[None])
    torch.testing.assert_close(out.embedding[0], alone_a.embedding[0])
    torch.testing.assert_close(out.attention[0, :4], alone_a.attention[0])
    assert out.attention[0, 4:].tolist() == [0.0, 0.0]
    assert torch.all(out.tokens[0, 4:] == 0)
    torch.testing.assert_close(out.embedding[1], model(bag_b[None]).embedding[0])


def test_padding_does_not_leak_into_gradients():
    model = _model()
    x = torch.randn(2, 5, 16)
    x[0, 3:] = float("nan")
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    model(x, mask).embedding.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_mask_may_mark_any_positions_not_only_a_suffix():
    model = _model()
    x = torch.randn(1, 5, 16)
    mask = torch.tensor([[False, True, False, True, True]])
    out = model(x, mask)
    alone = model(x[:, [1, 3, 4]])
    torch.testing.assert_close(out.embedding, alone.embedding)
    torch.testing.assert_close(out.attention[0, [1, 3, 4]], alone.attention[0])


def test_single_patch_bag_gets_all_the_attention():
    out = _model()(torch.randn(1, 1, 16))
    assert out.attention.tolist() == [[1.0]]


def test_user_errors_are_mstar_errors():
    model = _model()
    with pytest.raises(MstarError, match="in_dim=16"):
        model(torch.randn(1, 4, 32))
    with pytest.raises(MstarError, match=r"\(B, N, D\)"):
        model(torch.randn(4, 16))
    with pytest.raises(MstarError, match="no real patches"):
        model(torch.randn(2, 3, 16), torch.tensor([[True, True, True], [False, False, False]]))
    with pytest.raises(MstarError, match="mask must be bool"):
        model(torch.randn(1, 3, 16), torch.ones(1, 3))
    with pytest.raises(MstarError, match="act="):
        ABMIL(act="swish")


def test_dropout_zero_builds_no_dropout_layer_and_keeps_upstream_key_indices():
    keys = set(ABMIL(in_dim=16, dim=8, dropout=0.0).state_dict())
    assert keys == {"feature.0.weight", "feature.0.bias", "attention.0.weight", "attention.0.bias",
                    "attention.2.weight", "attention.2.bias"}
