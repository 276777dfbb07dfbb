"""Loading upstream weights: exact key checks, `module.` prefixes, stage-1 aggregator checkpoints."""

from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.models import create_mil_model
from mstar.models.transmil import TransMIL
from mstar.models.upstream import (
    from_upstream,
    load_exact,
    load_stage1_aggregator,
    mil_to_upstream,
    strip_module_prefix,
    to_stage1_state_dict,
)

GEOMETRY = dict(heads=4, dim_head=8, num_landmarks=8)


def _upstream_abmil_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return mil_to_upstream(create_mil_model("abmil", task="classification", n_classes=2, in_dim=16, dim=8))


def test_strip_module_prefix():
    assert list(strip_module_prefix({"module.module.a.b": 1, "c.module.d": 2})) == ["a.b", "c.module.d"]


def test_from_upstream_reads_sizes_and_accepts_ddp_prefixes(tmp_path):
    sd = {f"module.{k}": v for k, v in _upstream_abmil_sd().items()}
    torch.save(sd, tmp_path / "abmil.pt")
    model = from_upstream(tmp_path / "abmil.pt", task="survival")
    assert (model.aggregator.in_dim, model.aggregator.embed_dim, model.head.fc.out_features) == (16, 8, 2)
    torch.testing.assert_close(model.head.fc.weight, sd["module.classifier.0.weight"])


def test_exact_loading_names_missing_unexpected_and_mis_shaped_keys():
    model = create_mil_model("abmil", task="classification", n_classes=2, in_dim=16, dim=8)
    sd = dict(model.state_dict())
    sd.pop("aggregator.attention.2.bias")
    sd["aggregator.extra"] = torch.zeros(1)
    sd["head.fc.weight"] = torch.zeros(3, 8)
    with pytest.raises(MstarError) as err:
        load_exact(model, sd, "test weights")
    msg = str(err.value)
    assert "missing: aggregator.attention.2.bias" in msg and "unexpected: aggregator.extra" in msg
    assert "head.fc.weight (3, 8) vs (2, 8)" in msg and "\n" not in msg


def test_from_upstream_rejects_foreign_state_dicts_and_bad_files(tmp_path):
    with pytest.raises(MstarError, match="neither upstream"):
        from_upstream({"fc.weight": torch.zeros(2, 2)}, task="classification")
    no_head = {k: v for k, v in _upstream_abmil_sd().items() if not k.startswith("classifier")}
    with pytest.raises(MstarError, match="no classifier"):
        from_upstream(no_head, task="classification")
    with pytest.raises(MstarError, match="does not exist"):
        from_upstream(tmp_path / "missing.pt", task="classification")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(MstarError, match="cannot read this checkpoint"):
        from_upstream(tmp_path / "junk.pt", task="classification")


def _stage1_checkpoint(prefix: str = "module.") -> tuple[dict, torch.nn.Linear, TransMIL]:
    torch.manual_seed(1)
    proj = torch.nn.Linear(16, 32)
    trunk = TransMIL(in_dim=32, dim=32, input_proj=False, **GEOMETRY).eval()
    sd = {f"{prefix}proj.{k}": v for k, v in proj.state_dict().items()}
    sd.update({f"{prefix}vision_encoder.{k}": v for k, v in trunk.state_dict().items()})
    sd[f"{prefix}text_encoder.bert.weight"] = torch.zeros(3)  # other stage-1 parts are ignored
    return {"model_state_dict": sd}, proj, trunk


def test_stage1_checkpoint_mode_reproduces_proj_then_trunk():
    ckpt, proj, trunk = _stage1_checkpoint()
    model = load_stage1_aggregator(ckpt, proj="checkpoint", num_landmarks=8).eval()
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        expected = trunk(proj(x))
        out = model(x)
    torch.testing.assert_close(out.embedding, expected.embedding)
    torch.testing.assert_close(out.tokens, expected.tokens)


def test_stage1_fresh_mode_is_upstream_transmil_pre(tmp_path):
    ckpt, proj, trunk = _stage1_checkpoint(prefix="")
    torch.save(ckpt, tmp_path / "stage1.pt")
    model = load_stage1_aggregator(tmp_path / "stage1.pt", in_dim=16, proj="fresh", num_landmarks=8)
    assert [type(m).__name__ for m in model._fc1] == ["Linear", "ReLU",
                                                      "FastDropout"]  # an nn.Dropout subclass
    assert not torch.equal(model._fc1[0].weight, proj.weight)  # upstream ignores `proj`
    for key, value in trunk.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_stage1_none_mode_takes_features_of_the_trunk_width():
    ckpt, _, trunk = _stage1_checkpoint()
    model = load_stage1_aggregator(ckpt, proj="none", num_landmarks=8).eval()
    x = torch.randn(1, 6, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).embedding, trunk(x).embedding)


def test_stage1_errors_are_clear(tmp_path):
    with pytest.raises(MstarError, match="no stage-1 aggregator"):
        load_stage1_aggregator({"model_state_dict": {"proj.weight": torch.zeros(32, 16)}})
    torch.save({"state_dict": {"model.proj.weight": torch.zeros(2, 2)}, "pytorch-lightning_version": "2",
                "loops": {}}, tmp_path / "last.ckpt")
    with pytest.raises(MstarError, match=r"last.ckpt: a training resume point \(Lightning\), not a stage-1 "
                                         r"model; pass the run's checkpoints/stage1.pt"):
        load_stage1_aggregator(tmp_path / "last.ckpt")
    ckpt, _, _ = _stage1_checkpoint()
    no_proj = {"model_state_dict": {k: v for k, v in ckpt["model_state_dict"].items() if ".proj." not in k}}
    with pytest.raises(MstarError, match="no proj.weight"):
        load_stage1_aggregator(no_proj, proj="checkpoint")
    broken = {"model_state_dict": dict(ckpt["model_state_dict"])}
    del broken["model_state_dict"]["module.vision_encoder.layer2.norm.weight"]
    with pytest.raises(MstarError, match="missing: layer2.norm.weight"):
        load_stage1_aggregator(broken, proj="fresh", in_dim=16)
    with pytest.raises(MstarError, match="proj="):
        load_stage1_aggregator(ckpt, proj="maybe")


def test_stage1_layout_round_trips():
    ckpt, _, _ = _stage1_checkpoint(prefix="")
    model = load_stage1_aggregator(ckpt, proj="checkpoint", num_landmarks=8)
    sd = to_stage1_state_dict(model)
    expected = {k: v for k, v in ckpt["model_state_dict"].items() if not k.startswith("text_encoder")}
    assert set(sd) == set(expected) and all(torch.equal(sd[k], expected[k]) for k in sd)
    with pytest.raises(MstarError, match="input_proj='linear'"):
        to_stage1_state_dict(TransMIL(in_dim=16, dim=32, **GEOMETRY))
