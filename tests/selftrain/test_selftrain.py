"""Stage 2 end to end on the synthetic cohort: the held-out student-target cosine rises, patch probes hold,
the encoder round-trips through `mstar extract`, and the downstream classifier is recorded before/after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from typer.testing import CliRunner

import mstar.cli.selftrain  # noqa: F401 - registers `mstar self-train`
from mstar.cli import app

from .conftest import FEATURES

PROBE_TOLERANCE = 0.05  # balanced accuracy; ~1 patch per class of the 170 held-out test patches


@pytest.fixture(scope="module")
def demo(st_work, tiny_cohort, tmp_path_factory):
    """The demo step on the tiny cohort: toy stage-1 aggregator (train fold), 3 epochs, val+test held out."""
    from mstar.demo.stage1_steps import step_selftrain

    out = tmp_path_factory.mktemp("selftrain_demo")
    work = out / "work"
    shutil.copytree(st_work, work)
    result = step_selftrain(out, work=work, cohort=tiny_cohort, held_out_folds=("val", "test"),
                            settings={"epochs": 3, "val_patches_per_slide": 64}, threads=1)
    return result, work


@pytest.mark.slow
def test_self_training_raises_held_out_cosine_and_keeps_patch_probes(demo):
    result, _ = demo
    metrics = json.loads(Path(result["run"], "metrics.json").read_text())
    change = metrics["change"]
    assert result["cosine_after"] > result["cosine_before"] + 0.1
    assert (change["cosine"]["ci_low"] > 0
            and metrics["final"]["cosine"]["ci_low"] > metrics["initial"]["cosine"]["ci_high"])
    assert (metrics["initial"]["cosine"]["n"] > 150
            and metrics["initial"]["linear_balanced_accuracy"]["n"] > 150)
    for probe in ("knn", "linear"):
        assert result[f"{probe}_after"] >= result[f"{probe}_before"] - PROBE_TOLERANCE, probe
        assert change[f"{probe}_balanced_accuracy"]["ci_high"] >= 0, probe  # no significant decrease
    log = pd.read_csv(result["run"] + "/log.csv")
    assert (list(log["epoch"]) == [0, 1, 2, 3]
            and log["val_cosine"].iloc[-1] == pytest.approx(result["cosine_after"]))
    assert (log["train_target"].iloc[1:] < 1).all() and (log["momentum"].diff().iloc[1:] > 0).all()
    assert (log["probe_n_test"] > 150).all()
    run = result["run"]
    for name in ("config.yaml", "figures/validation_curves.png", "encoder/proj.pt", "checkpoints/last.ckpt"):
        assert (Path(run) / name).exists(), name
    proj = torch.load(run + "/encoder/proj.pt", weights_only=True)["model_state_dict"]
    stage1 = torch.load(result["toy_stage1"]["checkpoint"], weights_only=True)["model_state_dict"]
    assert torch.equal(proj["proj.weight"], stage1["proj.weight"])  # frozen by default


@pytest.mark.slow
def test_output_is_a_plain_timm_state_dict_that_mstar_extract_loads_strictly(demo, tmp_path):
    result, work = demo
    weights = result["encoder"]
    sidecar = json.loads(Path(weights).with_suffix(".json").read_text())
    assert sidecar["format"] == "mstar.encoder/1" and sidecar["timm_model"] == "test_vit"
    state = torch.load(weights, weights_only=True)
    model = timm.create_model("test_vit", num_classes=0)
    model.load_state_dict(state, strict=True)  # the same kind of file as the released mSTAR.pth
    model.eval()
    sub = tmp_path / "sub"
    (sub / "tiles").mkdir(parents=True)
    for p in sorted((work / "tiles").glob("*.h5"))[:2]:
        shutil.copy(p, sub / "tiles" / p.name)
    runner = CliRunner()
    for name in (sidecar["name"], "timm:test_vit"):  # through the sidecar, and as the plain timm architecture
        res = runner.invoke(app, ["extract", str(sub), "--encoder", name, "--checkpoint", weights,
                                  "--workers", "0", "--device", "cpu"])
        assert res.exit_code == 0, res.output
    from mstar.features.encoders import folder_name
    from mstar.features.preprocess import PreprocessConfig, preprocess_batch
    from mstar.selftrain.cohort import load_slides
    from mstar.selftrain.data import SlideReader

    slides = load_slides(sub, sub / "features" / folder_name(sidecar["name"]))
    p = sidecar["preprocess"]
    prep = PreprocessConfig(int(p["input_px"]), tuple(p["mean"]), tuple(p["std"]), float(p["target_mpp"]),
                            p["precision"])
    with torch.no_grad():
        direct = model(preprocess_batch(SlideReader(slides).read_input(0, range(4), prep), prep)).numpy()
    for folder in (folder_name(sidecar["name"]), "timm-test_vit"):
        with h5py.File(sub / "features" / folder / f"{slides[0].slide_id}.h5", "r") as f:
            np.testing.assert_allclose(f["features"][:4], direct, atol=1e-4)
    # the re-extracted cohort features of the demo step came from the same weights
    with h5py.File(work / "features" / folder_name(sidecar["name"]) / f"{slides[0].slide_id}.h5", "r") as f:
        np.testing.assert_allclose(f["features"][:4], direct, atol=1e-4)
    assert not np.allclose(direct, h5py.File(work / "features" / FEATURES
                                             / f"{slides[0].slide_id}.h5")["features"][:4],
                           atol=1e-3)  # and they differ from the features before stage 2


@pytest.mark.slow
def test_downstream_classifier_is_recorded_before_and_after_with_cis(demo):
    result, _ = demo
    table = pd.read_csv(result["run"] + "/downstream.csv")
    row = table.set_index("metric").loc["auc_macro"]
    for side in ("before", "after"):
        assert 0 <= row[f"{side}_ci_low"] <= row[f"{side}_value"] <= row[f"{side}_ci_high"] <= 1
    doc = json.loads(Path(result["run"], "downstream.json").read_text())
    assert doc["split"] == "test" and doc["features_after"].endswith("timm-test_vit-s2")
    assert result["auc_before"] == pytest.approx(row["before_value"])
