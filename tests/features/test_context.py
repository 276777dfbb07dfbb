"""Multi-resolution features: each tile tied to its low-power context; bags of [high | context]."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from mstar.data.bags import BagStore
from mstar.errors import MstarError
from mstar.features.context import context_rows, load_context, low_power_pass, write_context_folder
from mstar.features.extract import extract_features
from mstar.features.io import load_features


@pytest.mark.slow
def test_context_files_keep_the_high_power_part_and_tie_each_tile_to_its_region(tiny_tiles, tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "work"
    shutil.copytree(tiny_tiles / "tiles", root / "tiles")
    extract_features(root, "timm:test_vit", workers=0, show_progress=False)
    high = root / "features" / "timm-test_vit"
    low = low_power_pass(root, "timm:test_vit", 2.0, show_progress=False)
    out = root / "features" / "timm-test_vit-ctx2"
    written = write_context_folder(high, low, out)
    assert len(written) == len(list(high.glob("*.h5")))
    path = written[0]
    feats, coords, attrs = load_features(path)  # what CLAM/TRIDENT-style readers see: the high-power part
    hp_feats, hp_coords, _ = load_features(high / path.name)
    np.testing.assert_array_equal(feats, hp_feats)
    np.testing.assert_array_equal(coords, hp_coords)
    lp_feats, lp_coords, lp_attrs = load_features(low / path.name)
    context = load_context(path)
    with h5py.File(path, "r") as f:
        rows = f["context_index"][:]
        np.testing.assert_array_equal(f["context_coords"][:], lp_coords)
    np.testing.assert_array_equal(rows, context_rows(hp_coords, int(attrs["tile_px_level0"]), lp_coords,
                                                     int(lp_attrs["tile_px_level0"])))
    assert (rows >= 0).all() and attrs["context_mpp"] == 2.0  # low-power regions derive from the tiles
    for i in np.flatnonzero(rows >= 0)[:5]:  # the context is the feature of the region holding the tile
        np.testing.assert_array_equal(context[i], lp_feats[rows[i]])
        x, y = lp_coords[rows[i]]
        side = int(lp_attrs["tile_px_level0"])
        cx, cy = hp_coords[i] + int(attrs["tile_px_level0"]) // 2
        assert x <= cx < x + side and y <= cy < y + side
    store = BagStore(out, [path.stem], [[path.stem]], context=True)
    bag = store.bag(path.stem).float()
    assert store.dim == 2 * hp_feats.shape[1] and bag.shape == (len(feats), 2 * feats.shape[1])
    np.testing.assert_allclose(bag[:, feats.shape[1]:].numpy(), context, atol=1e-2)  # fp16 in RAM
    with pytest.raises(MstarError, match="no context_features"):
        BagStore(high, [path.stem], [[path.stem]], context=True)
    with pytest.raises(MstarError, match="must be coarser"):
        low_power_pass(root, "timm:test_vit", 0.25, show_progress=False)


@pytest.mark.slow
def test_cli_scan_only_and_context_mpp(tiny_tiles, tmp_path):
    from typer.testing import CliRunner

    from mstar.cli import app

    root = tmp_path / "work"
    shutil.copytree(tiny_tiles / "tiles", root / "tiles")
    runner = CliRunner()
    result = runner.invoke(app, ["extract", str(root), "--encoder", "timm:test_vit", "--scan-only",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "low-power pass at 2 µm/px" in result.output and not (root / "features").exists()
    result = runner.invoke(app, ["extract", str(root), "--encoder", "timm:test_vit", "--context-mpp", "2",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    ctx = root / "features" / "timm-test_vit-ctx2"
    assert len(list(ctx.glob("*.h5"))) == len(list((root / "tiles").glob("*.h5")))
    assert load_context(next(ctx.glob("*.h5"))).shape[1] == 64
