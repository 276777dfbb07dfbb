"""Switching a stage-1 component with arguments of another is a one-line error naming the key."""

from __future__ import annotations

import pytest

from mstar.errors import MstarError
from mstar.pretrain.stage1_config import Stage1Config
from mstar.run.component_args import accepted_kwargs, check_kwargs

BASE = dict(manifest="m.csv", reports="r.json", rna="rna.csv")


def test_performer_arguments_left_after_switching_to_snn_name_the_keys():
    with pytest.raises(MstarError, match=r"gene_args key\(s\) 'depth', 'heads' are not arguments of "
                                         r"gene_encoder 'snn' \(it takes: hidden, dropout\)"):
        Stage1Config(**BASE, gene_encoder="snn",
                     gene_args={"depth": 1, "heads": 4, "dropout": 0.1}).validate()
    Stage1Config(**BASE, gene_encoder="snn", gene_args={"hidden": [64], "dropout": 0.1}).validate()
    Stage1Config(**BASE, gene_encoder="performer", gene_args={"depth": 1, "heads": 4}).validate()
    with pytest.raises(MstarError, match="'hidden' are not arguments of gene_encoder 'performer'"):
        Stage1Config(**BASE, gene_encoder="performer", gene_args={"hidden": [64]}).validate()


def test_arguments_the_caller_sets_are_not_the_users_and_vision_args_are_checked():
    with pytest.raises(MstarError, match="'proj_dim' are not arguments"):
        Stage1Config(**BASE, gene_encoder="snn", gene_args={"proj_dim": 8}).validate()
    with pytest.raises(MstarError, match="vision_args key.*'landmarks'.*TransMIL"):
        Stage1Config(**BASE, vision_args={"landmarks": 8}).validate()


def test_functions_taking_any_keyword_are_not_checked():
    def anything(**kwargs):
        return kwargs

    assert accepted_kwargs(anything) is None
    check_kwargs(anything, {"whatever": 1}, "model_args", "x")
