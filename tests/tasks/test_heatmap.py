import cv2
import numpy as np
import pytest
import torch

from mstar.errors import MstarError
from mstar.models.registry import create_mil_model
from mstar.slide.tiles_file import read_tiles
from mstar.tasks.config import TrainConfig
from mstar.tasks.heatmap import patch_scores, slide_heatmap
from mstar.tasks.runner import train_task
from tests.tasks._bags import write_bag


@pytest.fixture(scope="module")
def run_on_tiny_cohort(tiny_cohort, tiny_tiles, tmp_path_factory):
    feats_dir = tmp_path_factory.mktemp("feats")
    rng = np.random.default_rng(0)
    for tiles in (tiny_tiles / "tiles").glob("*.h5"):
        coords, attrs = read_tiles(tiles)
        feats = rng.normal(size=(len(coords), 8))
        write_bag(feats_dir / tiles.name, feats,
                  {k: v for k, v in attrs.items() if not isinstance(v, np.ndarray)})
        import h5py

        with h5py.File(feats_dir / tiles.name, "a") as f:
            f["coords"][...] = coords
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(task="classify", manifest=str(tiny_cohort / "manifests" / "diagnosis.csv"),
                      features=str(feats_dir), out=str(out), epochs=1, bootstrap=20, model_args={"dim": 16})
    return train_task(cfg, progress=False)["run"]


def test_heatmap_and_top_tiles_are_drawn(run_on_tiny_cohort, tiny_cohort):
    slide = sorted((tiny_cohort / "slides").glob("*.svs"))[0].stem
    result = slide_heatmap(run_on_tiny_cohort, slide, top_k=4)
    heat = cv2.imread(result["heatmap"])
    top = cv2.imread(result["top_tiles"])
    assert heat is not None and heat.shape[0] > 200 and top.shape[:2] == (2 * (192 + 18), 2 * 192)
    assert result["score"] == "attention" and abs(sum(result["probs"]) - 1) < 1e-5


def test_unknown_slide_is_a_clear_error(run_on_tiny_cohort):
    with pytest.raises(MstarError, match="no features for slide 'NOPE'"):
        slide_heatmap(run_on_tiny_cohort, "NOPE")


def test_transmil_scores_come_from_per_patch_tokens():
    model = create_mil_model("transmil", "classification", 3, in_dim=8, dim=16).eval()
    scores, kind, summary = patch_scores(model, torch.randn(10, 8))
    assert kind == "per-patch class score" and scores.shape == (10,) and np.isfinite(scores).all()
