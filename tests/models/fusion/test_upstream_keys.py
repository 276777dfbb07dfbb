"""Strict loading of the upstream multimodal state_dicts: keys and shapes equal the documented tables."""

from __future__ import annotations

import math

import pytest
import torch

from mstar.errors import MstarError
from mstar.models import create_model
from mstar.models.fusion import CMTA, MCAT, Porpoise, fusion_from_upstream, upstream_kind
from mstar.models.fusion.motcat import MOTCat
from tests.models.fusion._recipe import FUSION_WEIGHT_SEEDS, OMIC_SIZES, PORPOISE_OMIC_DIM, seeded_state_dict
from tests.models.fusion._tables import TABLES

CLASSES = {"mcat": MCAT, "motcat": MOTCat, "porpoise": Porpoise, "cmta": CMTA}


def _ours(name: str) -> torch.nn.Module:
    kw = {"omic_dim": PORPOISE_OMIC_DIM} if name == "porpoise" else {"omic_sizes": OMIC_SIZES}
    return create_model(name, path_dim=1024, n_bins=4, **kw)


def _upstream_sd(name: str) -> dict[str, torch.Tensor]:
    shapes = {k: torch.Size(s) for k, s in TABLES[name][0].items()}
    return seeded_state_dict(shapes, FUSION_WEIGHT_SEEDS[name])


@pytest.mark.parametrize("name", sorted(TABLES))
def test_state_dict_keys_and_shapes_equal_the_upstream_table(name):
    table, n_keys, n_params = TABLES[name]
    sd = _ours(name).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == table
    assert len(sd) == n_keys and sum(math.prod(s) for s in table.values()) == n_params


@pytest.mark.parametrize("name", sorted(TABLES))
def test_upstream_state_dict_loads_strictly_and_round_trips(name):
    sd = _upstream_sd(name)
    model = _ours(name)
    model.load_state_dict(sd, strict=True)
    back = model.state_dict()
    assert all(torch.equal(back[k], sd[k]) for k in sd)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_fusion_from_upstream_recognises_the_model_and_reads_sizes(name):
    sd = _upstream_sd(name)
    wrapped = {"best_epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}  # engine checkpoint
    model = fusion_from_upstream(wrapped)
    assert upstream_kind(sd) == name and type(model) is CLASSES[name]
    if name == "porpoise":
        assert model.omic_dim == PORPOISE_OMIC_DIM
    else:
        assert model.omic_sizes == list(OMIC_SIZES)
    assert all(torch.equal(model.state_dict()[k], sd[k]) for k in sd)


def test_fusion_from_upstream_reads_a_file(tmp_path):
    path = tmp_path / "mcat.pt"
    torch.save(_upstream_sd("mcat"), path)
    assert isinstance(fusion_from_upstream(path), MCAT)


def test_mismatching_or_foreign_weights_are_user_errors():
    sd = _upstream_sd("motcat")
    del sd["omic_rho.0.bias"]
    with pytest.raises(MstarError, match="missing: omic_rho.0.bias"):
        fusion_from_upstream(sd)
    with pytest.raises(MstarError, match="not an upstream MCAT"):
        fusion_from_upstream({"feature.0.weight": torch.zeros(2, 2)})
