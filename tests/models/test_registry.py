"""The model registry and `mstar models`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mstar.cli import app
from mstar.errors import MstarError
from mstar.models import (
    ABMIL,
    MILModel,
    TransMIL,
    create_mil_model,
    create_model,
    list_models,
    register_model,
)


def test_builtin_models_are_listed_with_one_line_descriptions():
    models = list_models()
    assert {"abmil", "abmil_gated", "transmil", "transmil_stage1"} <= set(models)
    assert list(models) == sorted(models)
    assert all(desc and "\n" not in desc for desc in models.values())


def test_create_model_passes_arguments():
    assert isinstance(create_model("abmil", in_dim=32), ABMIL)
    assert create_model("abmil_gated").gated
    model = create_model("transmil", in_dim=16, dim=32, num_landmarks=8)
    assert isinstance(model, TransMIL) and model.in_dim == 16 and model.embed_dim == 32
    assert len(create_model("transmil_stage1")._fc1) == 1


def test_create_mil_model_adds_the_head():
    model = create_mil_model("abmil", task="survival", n_classes=4, in_dim=32)
    assert isinstance(model, MILModel) and model.head.fc.out_features == 4 and model.task == "survival"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(MstarError, match="available: .*transmil"):
        create_model("resnet")


def test_a_name_cannot_be_registered_twice(monkeypatch):
    from mstar.models import registry

    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_DESCRIPTIONS", dict(registry._DESCRIPTIONS))
    register_model("_test_dummy", "a dummy")(lambda: None)
    with pytest.raises(ValueError, match="twice"):
        register_model("_test_dummy", "another")(lambda: None)


def test_mstar_models_command_lists_the_registry():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("abmil", "abmil_gated", "transmil", "transmil_stage1"):
        assert name in result.output


def test_arguments_of_another_model_are_a_one_line_error_naming_the_key():
    with pytest.raises(MstarError, match="model_args key 'attn_dim' is not an argument of model 'transmil'"):
        create_model("transmil", in_dim=8, attn_dim=32)  # an ABMIL argument left after switching model
    with pytest.raises(MstarError, match="model_args key 'heads' is not an argument of model 'abmil'"):
        create_mil_model("abmil", "classification", 2, in_dim=8, heads=4)


def test_values_a_model_cannot_be_built_with_are_a_one_line_error():
    with pytest.raises(MstarError, match=r"^config: model 'abmil' cannot be built with in_dim=8, dim=-4 "
                                         r"\(.*negative dimension.*\); check model_args$") as err:
        create_mil_model("abmil", "classification", 2, in_dim=8, dim=-4)
    assert "\n" not in str(err.value)
