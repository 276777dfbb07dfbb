"""Two CPU processes under torchrun (gloo): each rank its own slides, one merged summary."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mstar.features.io import load_features


@pytest.mark.slow
def test_torchrun_two_ranks_shard_slides_and_merge_one_summary(work, tmp_path):
    from mstar.features.extract import extract_features

    single = tmp_path / "single"
    import shutil

    shutil.copytree(work, single)
    extract_features(single, "timm:test_vit", workers=0, show_progress=False)

    entry = tmp_path / "mstar_main.py"
    entry.write_text("from mstar.cli import main\nmain()\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(entry),
           "extract", str(work), "--encoder", "timm:test_vit", "--workers", "0", "--device", "cpu",
           "--save-pt"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    folder = work / "features" / "timm-test_vit"
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False)
    slides = sorted(p.stem for p in (work / "tiles").glob("*.h5"))
    assert sorted(summary["slide"]) == slides and (summary["status"] == "ok").all()
    assert set(summary["rank"]) == {0, 1}  # both ranks worked, one summary
    assert not list(folder.glob("summary*.rank*"))
    for sid in slides:
        f, c, _ = load_features(folder / f"{sid}.h5")
        ref, ref_c, _ = load_features(single / "features" / "timm-test_vit" / f"{sid}.h5")
        np.testing.assert_allclose(f, ref, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(c, ref_c)
        assert (work / "pt_files" / "timm-test_vit" / f"{sid}.pt").exists()
