"""FastDropout: the cheap CPU mask keeps each element with probability 1 - p, independently, and scales."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mstar.models.dropout import FastDropout, keep_mask


@pytest.mark.parametrize("p", [0.25, 0.1, 0.5])
def test_keep_fraction_matches_p(p):
    torch.manual_seed(0)
    keep = keep_mask((400, 1000), p)  # 400k draws: sd of the mean ~ 0.0008
    assert keep.dtype == torch.bool and keep.shape == (400, 1000)
    assert abs(keep.float().mean().item() - (1 - p)) < 0.004


def test_mask_elements_are_independent_and_odd_sizes_work():
    torch.manual_seed(1)
    keep = keep_mask((7, 13, 3), 0.5).flatten().float()  # 273 elements: not a multiple of 4
    assert keep.numel() == 273
    torch.manual_seed(2)
    big = keep_mask((200_000,), 0.5).float()
    # neighbours (same 64-bit word or not) are uncorrelated: P(both kept) ~ 1/4
    both = (big[:-1] * big[1:]).mean().item()
    assert abs(both - 0.25) < 0.01
    # the four 16-bit words of one draw each carry an unbiased bit pattern (the top word too)
    per_slot = big.view(-1, 4).mean(0)
    assert torch.all((per_slot - 0.5).abs() < 0.01)


def test_training_forward_and_backward_match_the_mask():
    torch.manual_seed(3)
    drop = FastDropout(0.25).train()
    x = torch.randn(4, 50, 16, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)


def test_seeded_runs_repeat_and_eval_is_identity():
    drop = FastDropout(0.3)
    x = torch.randn(8, 32)
    torch.manual_seed(4)
    a = drop(x)
    torch.manual_seed(4)
    assert torch.equal(a, drop(x))
    assert torch.equal(drop.eval()(x), x)


def test_same_state_dict_and_p_zero_or_one():
    assert FastDropout(0.25).state_dict() == nn.Dropout(0.25).state_dict() == {}
    x = torch.randn(3, 5)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))
    assert torch.equal(FastDropout(1.0).train()(x), F.dropout(x, 1.0, True))


def test_keeps_dtype():
    drop = FastDropout(0.25).train()
    assert drop(torch.randn(4, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16
