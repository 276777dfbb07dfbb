"""Hierarchical scan: region mapping and selection, and `mstar extract --scan` on the tiny cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.features.context import context_rows
from mstar.predict.scan import keep_mask


def test_each_high_power_tile_maps_to_the_low_power_region_holding_its_centre():
    lp = np.array([[0, 0], [1024, 0], [0, 1024]])  # 1024-px regions on the level-0 grid
    hp = np.array([[0, 0], [768, 768], [1024, 256], [1536, 1536], [256, 1280]])  # 256-px tiles
    assert context_rows(hp, 256, lp, 1024).tolist() == [0, 0, 1, -1, 2]


def test_tiles_are_kept_by_region_score_up_to_the_fraction():
    regions = np.array([0, 0, 1, 1, 1, 2, -1, 2])
    scores = np.array([0.2, 0.7, 0.1])
    keep = keep_mask(scores, regions, 0.5)
    assert keep.tolist() == [True, False, True, True, True, False, False, False]  # region 1, then one of 0
    assert keep_mask(scores, regions, 1.0).all()
    assert keep_mask(scores, regions, 0.01).sum() == 1  # at least one tile per slide
    # a slide without a low-power tissue tile: no ranking, the first tiles in order
    assert keep_mask(np.zeros(0), np.full(4, -1), 0.5).tolist() == [True, True, False, False]


@pytest.mark.slow
def test_extract_scan_embeds_the_top_share_and_records_the_rest(tiny_tiles, tiny_cohort, tmp_path):
    import shutil

    import torch

    from mstar.features.extract import extract_features
    from mstar.features.io import load_features
    from mstar.predict.scan import hierarchical_scan, skipped_tiles
    from mstar.slide.batch import tile_many
    from mstar.slide.tiles_file import read_tiles
    from mstar.slide.tiling import TileParams
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    torch.set_num_threads(1)
    root = tmp_path / "work"
    shutil.copytree(tiny_tiles / "tiles", root / "tiles")
    # 1. the low-power pass, as a user runs it (`mstar tile --target-mpp 2`, `mstar extract`) ...
    tile_many([tiny_cohort / "slides"], root / "scan", TileParams(target_mpp=2.0), show_progress=False)
    extract_features(root / "scan", "timm:test_vit", workers=0, show_progress=False)
    # 2. ... a run trained on it ranks the regions ...
    run = train_task(TrainConfig(task="classify", manifest=str(tiny_cohort / "manifests" / "diagnosis.csv"),
                                 features=str(root / "scan" / "features" / "timm-test_vit"),
                                 out=str(tmp_path / "runs"), epochs=1, bootstrap=10,
                                 model_args={"dim": 16, "attn_dim": 8}), progress=False)["run"]
    # 3. ... and only the top half of each slide's tiles is embedded at high power
    result = hierarchical_scan(root, "timm:test_vit", run, keep_fraction=0.5, show_progress=False)
    table = result["summary"].set_index("slide")
    assert (table["kept"] == np.ceil(table["tiles"] / 2)).all()
    for slide, row in table.iterrows():
        feats, coords, attrs = load_features(f"{result['features']}/{slide}.h5")
        skipped = skipped_tiles(f"{result['features']}/{slide}.h5")
        assert len(feats) == row["kept"] == attrs["scan_kept_tiles"]
        assert attrs["scan_total_tiles"] == row["tiles"]
        assert len(skipped) == row["tiles"] - row["kept"]
        kept_set, skipped_set = {tuple(c) for c in coords}, {tuple(c) for c in skipped}
        original = {tuple(c) for c in read_tiles(root / "tiles" / f"{slide}.h5")[0]}
        assert not kept_set & skipped_set and kept_set | skipped_set == original
        regions = pd.read_csv(root / "scan" / "regions" / f"{slide}.csv")
        assert np.isclose(regions["score"].sum(), 1.0, atol=1e-4)  # ABMIL attention over the regions
    assert result["scan_mpp"] == 2.0  # the µm/px the scan run was trained on
    # a scan run that never saw these features is refused before any work: other µm/px, weights, width
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(MstarError, match="--scan-mpp 1: the scan run was trained on features at 2 µm/px"):
        hierarchical_scan(root, "timm:test_vit", run, scan_mpp=1.0, show_progress=False)
    other = tmp_path / "other_test_vit.pth"
    torch.manual_seed(7)
    import timm

    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), other)
    with pytest.raises(MstarError, match="features from encoder timm:test_vit .* but the scan run was "
                                         "trained on timm:test_vit"):
        hierarchical_scan(root, "timm:test_vit", run, checkpoint=str(other), show_progress=False)
    with pytest.raises(MstarError, match="low-power pass: features from encoder timm:vit_tiny_patch16_224"):
        hierarchical_scan(root, "timm:vit_tiny_patch16_224", run, show_progress=False)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    from mstar.features.context import low_power_pass

    with pytest.raises(MstarError, match="coarser than the tiles"):  # a "low-power" pass finer than the tiles
        low_power_pass(root, "timm:test_vit", 0.25, show_progress=False)


def test_each_keep_fraction_has_its_own_folder(tmp_path):
    from mstar.predict.scan import keep_folder

    names = [keep_folder(tmp_path, f).name for f in (0.25, 0.3, 0.304, 0.5, 1.0, 1 / 3)]
    assert names == ["keep25", "keep30", "keep30.4", "keep50", "keep100", "keep33.3333"]
