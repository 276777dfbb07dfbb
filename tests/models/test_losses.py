"""NLLSurv: parity with upstream mSTAR numbers and the behaviour of each term."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from mstar.errors import MstarError
from mstar.models.losses import NLLSurvLoss, nll_surv_loss

_spec = importlib.util.spec_from_file_location(
    "_upstream_recipe_for_losses", Path(__file__).resolve().parents[1] / "models" / "_upstream_recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


@pytest.mark.parametrize("alpha", [0.0, 0.15, 0.4])
def test_matches_upstream_nll_loss(alpha):
    inp, ref = recipe.nll_inputs(), recipe.load_fixture("nll_surv")
    loss = nll_surv_loss(inp["hazards"], inp["S"], inp["y"], inp["c"], alpha=alpha)
    torch.testing.assert_close(loss, ref[f"loss_alpha_{alpha}"], atol=1e-6, rtol=1e-6)


def test_survival_is_computed_when_not_given_and_per_sample_values_match():
    inp, ref = recipe.nll_inputs(), recipe.load_fixture("nll_surv")
    loss = nll_surv_loss(inp["hazards"], None, inp["y"], inp["c"])
    torch.testing.assert_close(loss, ref["loss_alpha_0.0_S_none"])
    per_sample = torch.stack([nll_surv_loss(inp["hazards"][i:i + 1], inp["S"][i:i + 1], inp["y"][i:i + 1],
                                            inp["c"][i:i + 1]) for i in range(8)])
    torch.testing.assert_close(per_sample, ref["per_sample_alpha_0.0"], atol=1e-6, rtol=1e-6)


def test_terms_by_hand():
    hazards = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    S = torch.cumprod(1 - hazards, dim=1)  # 0.9, 0.72, 0.504, 0.3024
    event = nll_surv_loss(hazards, S, torch.tensor([2]), torch.tensor([0.0]))
    torch.testing.assert_close(event, -(torch.log(torch.tensor(0.72)) + torch.log(torch.tensor(0.3))))
    censored = nll_surv_loss(hazards, S, torch.tensor([2]), torch.tensor([1.0]))
    torch.testing.assert_close(censored, -torch.log(torch.tensor(0.504)))
    first_bin = nll_surv_loss(hazards, S, torch.tensor([0]), torch.tensor([0.0]))  # S_pad[0] = 1
    torch.testing.assert_close(first_bin, -torch.log(torch.tensor(0.1)))


def test_censored_term_is_present_with_alpha_zero():
    """A censored patient predicted to survive its bin more likely gets a lower loss (not a constant 0)."""
    y, c = torch.tensor([1]), torch.tensor([1.0])
    low = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    high = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    loss_low, loss_high = nll_surv_loss(low, None, y, c), nll_surv_loss(high, None, y, c)
    assert loss_low > 0 and loss_high < loss_low
    torch.testing.assert_close(loss_high, -torch.log(torch.tensor(0.81)))


def test_alpha_reweights_the_uncensored_term_only():
    hazards = torch.tensor([[0.3, 0.3, 0.3, 0.3]] * 2)
    y, c = torch.tensor([1, 1]), torch.tensor([0.0, 1.0])
    unc = nll_surv_loss(hazards[:1], None, y[:1], c[:1])
    cen = nll_surv_loss(hazards[1:], None, y[1:], c[1:])
    torch.testing.assert_close(nll_surv_loss(hazards, None, y, c, alpha=0.4), (unc + 0.6 * cen) / 2)


def test_clamp_keeps_the_loss_finite_and_module_wraps_the_function():
    hazards = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    loss = NLLSurvLoss(alpha=0.0)(hazards, None, torch.tensor([0]), torch.tensor([0.0]))
    torch.testing.assert_close(loss, -torch.log(torch.tensor(1e-7)))


def test_gradients_reach_the_hazards():
    hazards = torch.sigmoid(torch.randn(3, 4, requires_grad=True))
    hazards.retain_grad()
    nll_surv_loss(hazards, None, torch.tensor([0, 2, 3]), torch.tensor([0.0, 1.0, 0.0])).backward()
    assert torch.isfinite(hazards.grad).all() and hazards.grad.abs().sum() > 0


def test_time_bin_out_of_range_is_a_user_error():
    with pytest.raises(MstarError, match="0..3"):
        nll_surv_loss(torch.full((1, 4), 0.5), None, torch.tensor([4]), torch.tensor([0.0]))
