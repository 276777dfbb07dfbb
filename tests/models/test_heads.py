"""Heads and the aggregator + head composite."""

from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.models import ABMIL, ClassificationHead, MILModel, SurvivalHead, make_head, survival_from_logits


def test_survival_from_logits_values():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [-100.0, -100.0, 100.0, 0.0]])
    out = survival_from_logits(logits)
    torch.testing.assert_close(out.hazards[0], torch.full((4,), 0.5))
    torch.testing.assert_close(out.S[0], torch.tensor([0.5, 0.25, 0.125, 0.0625]))
    torch.testing.assert_close(out.S[1], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(out.risk, torch.tensor([-0.9375, -2.0]))


def test_heads_are_one_linear_named_fc():
    emb = torch.randn(2, 8)
    cls = ClassificationHead(8, 3)
    torch.testing.assert_close(cls(emb), emb @ cls.fc.weight.T + cls.fc.bias)
    surv = SurvivalHead(8, 4)
    torch.testing.assert_close(surv(emb).logits, surv.fc(emb))
    assert set(surv.state_dict()) == {"fc.weight", "fc.bias"}
    with pytest.raises(MstarError, match="task="):
        make_head("regression", 8, 1)


@pytest.mark.parametrize("task", ["classification", "survival"])
def test_mil_model_composes_aggregator_and_head(task):
    torch.manual_seed(0)
    model = MILModel(ABMIL(in_dim=16, dim=8), make_head(task, 8, 4)).eval()
    x, mask = torch.randn(2, 5, 16), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    out = model(x, mask)
    assert model.task == task
    torch.testing.assert_close(out.logits, model.head.fc(out.slide.embedding))
    assert (out.survival is not None) == (task == "survival")
    if out.survival is not None:
        torch.testing.assert_close(out.survival.S, torch.cumprod(1 - torch.sigmoid(out.logits), dim=1))
