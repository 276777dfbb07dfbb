"""Exact parity with upstream mSTAR: state_dict keys/shapes and outputs on the recorded fixtures."""

from __future__ import annotations

import pytest
import torch

from mstar.models import create_mil_model
from mstar.models.upstream import from_upstream, mil_to_upstream
from tests.models._upstream_recipe import (
    TOKEN_ROWS_300,
    WEIGHT_SEEDS,
    load_fixture,
    seeded_bag,
    seeded_state_dict,
)

# Keys and shapes as documented in ../shared/reference/upstream_state_dicts.md (C = n_classes).
TRANSMIL_KEYS = {
    "cls_token": (1, 1, 512), "_fc1.0.weight": (512, 1024), "_fc1.0.bias": (512,),
    "pos_layer.proj.weight": (512, 1, 7, 7), "pos_layer.proj.bias": (512,),
    "pos_layer.proj1.weight": (512, 1, 5, 5), "pos_layer.proj1.bias": (512,),
    "pos_layer.proj2.weight": (512, 1, 3, 3), "pos_layer.proj2.bias": (512,),
    **{f"layer{i}.{k}": s for i in (1, 2) for k, s in {
        "norm.weight": (512,), "norm.bias": (512,), "attn.to_qkv.weight": (1536, 512),
        "attn.to_out.0.weight": (512, 512), "attn.to_out.0.bias": (512,),
        "attn.res_conv.weight": (8, 1, 33, 1),
    }.items()},
    "norm.weight": (512,), "norm.bias": (512,), "classifier.weight": ("C", 512), "classifier.bias": ("C",),
}
ABMIL_KEYS = {
    "feature.0.weight": (512, 1024), "feature.0.bias": (512,), "attention.0.weight": (128, 512),
    "attention.0.bias": (128,), "attention.2.weight": (1, 128), "attention.2.bias": (1,),
    "classifier.0.weight": ("C", 512), "classifier.0.bias": ("C",),
}
CASES = {  # name: (aggregator, task, n_classes, documented keys, documented parameter count)
    "diagnosis_transmil": ("transmil", "classification", 3, TRANSMIL_KEYS, 2_672_659),
    "diagnosis_abmil": ("abmil", "classification", 3, ABMIL_KEYS, 592_132),
    "survival_attmil": ("abmil", "survival", 4, ABMIL_KEYS, 592_645),
    "survival_transmil": ("transmil", "survival", 4, TRANSMIL_KEYS, 2_673_172),
}


def _shapes(name: str) -> dict[str, torch.Size]:
    _, _, n_classes, keys, _ = CASES[name]
    return {k: torch.Size(n_classes if d == "C" else d for d in s) for k, s in keys.items()}


def _upstream_model(name: str):
    _, task, _, _, _ = CASES[name]
    return from_upstream(seeded_state_dict(_shapes(name), WEIGHT_SEEDS[name]), task=task).eval()


@pytest.mark.parametrize("name", sorted(CASES))
def test_upstream_layout_keys_shapes_and_size(name):
    aggregator, task, n_classes, _, n_params = CASES[name]
    model = create_mil_model(aggregator, task=task, n_classes=n_classes)
    sd = mil_to_upstream(model)
    assert {k: v.shape for k, v in sd.items()} == _shapes(name)
    assert sum(v.numel() for v in sd.values()) == n_params


@pytest.mark.parametrize("name", sorted(CASES))
def test_from_upstream_consumes_every_key_and_round_trips(name):
    sd = seeded_state_dict(_shapes(name), WEIGHT_SEEDS[name])
    model = from_upstream(sd, task=CASES[name][1])
    back = mil_to_upstream(model)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_diagnosis_transmil_logits_cls_and_tokens_match_upstream():
    ref = load_fixture("diagnosis_transmil")
    model = _upstream_model("diagnosis_transmil")
    with torch.no_grad():
        out300, out50 = model(seeded_bag(300)), model(seeded_bag(50))
    torch.testing.assert_close(out300.logits, ref["logits_300"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out50.logits, ref["logits_50"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out300.slide.embedding[0], ref["cls_300"], atol=1e-5, rtol=1e-5)
    assert ref["token_rows_300"].tolist() == list(TOKEN_ROWS_300)
    assert out300.slide.tokens.shape == (1, 300, 512)
    tokens = out300.slide.tokens[0, list(TOKEN_ROWS_300)]
    torch.testing.assert_close(tokens, ref["tokens_300"], atol=1e-5, rtol=1e-5)


def test_diagnosis_abmil_logits_and_attention_match_upstream():
    ref = load_fixture("diagnosis_abmil")
    with torch.no_grad():
        out = _upstream_model("diagnosis_abmil")(seeded_bag(300))
    torch.testing.assert_close(out.logits, ref["logits_300"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.slide.attention, ref["attention_300"], atol=1e-7, rtol=1e-5)


def test_survival_attmil_hazards_and_survival_match_upstream():
    ref = load_fixture("survival_attmil")
    with torch.no_grad():
        surv = _upstream_model("survival_attmil")(seeded_bag(300)).survival
    torch.testing.assert_close(surv.hazards, ref["hazards_300"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(surv.S, ref["S_300"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(surv.risk, -ref["S_300"].sum(dim=1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [300, 50])
def test_survival_transmil_hazards_and_survival_match_upstream(n):
    ref = load_fixture("survival_transmil")
    with torch.no_grad():
        surv = _upstream_model("survival_transmil")(seeded_bag(n)).survival
    torch.testing.assert_close(surv.hazards, ref[f"hazards_{n}"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(surv.S, ref[f"S_{n}"], atol=1e-5, rtol=1e-5)
