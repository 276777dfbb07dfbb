"""TransMIL: trunk layout, token order, batching and masking, configurable geometry."""

from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.models.transmil import TransMIL

TINY = dict(in_dim=16, dim=32, heads=4, dim_head=8, num_landmarks=8)


def _model(**kw) -> TransMIL:
    torch.manual_seed(0)
    return TransMIL(**{**TINY, **kw}).eval()


def test_outputs_are_the_normed_cls_and_the_first_n_tokens_in_patch_order():
    model = _model()
    x = torch.randn(1, 10, 16)
    out = model(x)
    cls, tokens = model.encode(model._fc1(x))
    assert tokens.shape == (1, 16, 32)  # 10 patches padded to a 4 x 4 grid
    assert out.attention is None
    torch.testing.assert_close(out.embedding, cls)
    torch.testing.assert_close(out.tokens, tokens[:, :10])
    # tokens come after the final LayerNorm (unit weights at init): zero mean per token
    torch.testing.assert_close(out.tokens.mean(dim=-1), torch.zeros(1, 10), atol=1e-5, rtol=0)


def test_equal_length_batch_equals_each_bag_alone():
    model = _model()
    x = torch.randn(3, 11, 16)
    batched = model(x)
    for b in range(3):
        alone = model(x[b : b + 1])
        torch.testing.assert_close(batched.embedding[b], alone.embedding[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched.tokens[b], alone.tokens[0], atol=1e-5, rtol=1e-5)


def test_unequal_lengths_with_mask_give_each_bag_its_batch_of_one_output():
    model = _model()
    bag_a, bag_b = torch.randn(5, 16), torch.randn(9, 16)
    x = torch.full((2, 9, 16), 1e6)  # padding values must not matter
    x[0, :5], x[1] = bag_a, bag_b
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    out = model(x, mask)
    alone_a, alone_b = model(bag_a[None]), model(bag_b[None])
    torch.testing.assert_close(out.embedding[0], alone_a.embedding[0])
    torch.testing.assert_close(out.tokens[0, :5], alone_a.tokens[0])
    assert torch.all(out.tokens[0, 5:] == 0)
    torch.testing.assert_close(out.embedding[1], alone_b.embedding[0])
    torch.testing.assert_close(out.tokens[1], alone_b.tokens[0])


def test_scattered_mask_puts_each_token_back_at_its_patch():
    model = _model()
    x = torch.randn(1, 6, 16)
    keep = [0, 2, 3, 5]
    mask = torch.zeros(1, 6, dtype=torch.bool)
    mask[0, keep] = True
    out = model(x, mask)
    alone = model(x[:, keep])
    torch.testing.assert_close(out.tokens[0, keep], alone.tokens[0])
    assert torch.all(out.tokens[0, [1, 4]] == 0)


def test_all_true_mask_equals_no_mask_and_gradients_flow():
    model = _model().train()
    x = torch.randn(2, 7, 16, requires_grad=True)
    model.eval()
    torch.testing.assert_close(model(x, torch.ones(2, 7, dtype=torch.bool)).embedding, model(x).embedding)
    model.train()
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    model(x, mask).embedding.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.all(x.grad[1, 4:] == 0)
    assert model.cls_token.grad is not None


def test_initialisation_follows_upstream():
    model = TransMIL(**TINY)
    assert model.cls_token.abs().max() < 1e-4
    assert torch.all(model.norm.weight == 1) and torch.all(model.norm.bias == 0)
    assert torch.all(model._fc1[0].bias == 0) and torch.all(model.layer1.attn.to_out[0].bias == 0)


def test_input_projection_variants():
    assert not any(k.startswith("_fc1") for k in TransMIL(in_dim=32, dim=32, input_proj=False).state_dict())
    linear = TransMIL(in_dim=16, dim=32, input_proj="linear")._fc1
    assert len(linear) == 1 and isinstance(linear[0], torch.nn.Linear)
    mlp = TransMIL(in_dim=16, dim=32, input_proj=True, act="gelu")._fc1
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "FastDropout"]  # an nn.Dropout subclass
    with pytest.raises(MstarError, match="in_dim == dim"):
        TransMIL(in_dim=16, dim=32, input_proj="none")
    with pytest.raises(MstarError, match="input_proj"):
        TransMIL(input_proj="conv")


def test_cmta_geometry_matches_the_upstream_pathomics_and_genomics_encoders():
    path = TransMIL(in_dim=256, dim=256, input_proj=False)
    shapes = {k: tuple(v.shape) for k, v in path.state_dict().items()}
    assert shapes["layer1.attn.to_qkv.weight"] == (768, 256)
    assert shapes["layer1.attn.res_conv.weight"] == (8, 1, 33, 1)
    assert shapes["pos_layer.proj.weight"] == (256, 1, 7, 7)
    assert path.layer1.attn.num_landmarks == 128 and path.layer1.attn.scale == 32**-0.5
    genomics = TransMIL(in_dim=256, dim=256, input_proj=False, ppeg=False)
    assert not any(k.startswith("pos_layer") for k in genomics.state_dict())
    assert len(genomics.state_dict()) == 15  # cls_token, layer1/2 (6 each), norm (2): upstream Transformer_G


def test_without_ppeg_there_is_no_square_padding():
    model = _model(ppeg=False)
    cls, tokens = model.encode(torch.randn(2, 6, 32))
    assert cls.shape == (2, 32) and tokens.shape == (2, 6, 32)


def test_double_input_is_cast_to_the_parameter_dtype():
    out = _model()(torch.randn(1, 4, 16, dtype=torch.float64))
    assert out.embedding.dtype == torch.float32


def test_wrong_feature_width_is_a_user_error():
    with pytest.raises(MstarError, match="in_dim=16"):
        _model()(torch.randn(1, 4, 1024))
