"""Shared fixtures: the real data beside the project (skipped when absent) and tiny synthetic cohorts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# `--precision auto` on the CPU depends on the machine (and a timed probe): tests extract in fp32 unless they
# test the choice itself (tests/features/test_cpu_precision.py sets it per test).
os.environ.setdefault("MSTAR_CPU_BF16", "0")


def shared_data_dir() -> Path:
    """``$MSTAR_SHARED_DATA`` or ``../shared/data`` beside the project root."""
    return Path(os.environ.get("MSTAR_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; tests using it skip cleanly when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set MSTAR_SHARED_DATA to use it)")
    return path


@pytest.fixture(scope="session")
def cmu_slide(shared_data: Path) -> Path:
    path = shared_data / "slides" / "CMU-1-Small-Region.svs"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A 9-case synthetic cohort (3 types), generated once per test session."""
    from mstar.data.synthetic import SynthConfig, make_cohort

    out = tmp_path_factory.mktemp("cohort")
    make_cohort(out, SynthConfig(cases=9, seed=0), workers=1, show_progress=False)
    return out


@pytest.fixture
def one_thread():
    """Torch on one CPU thread for the test (restored afterwards): tiny models pay an OpenMP synchronisation
    per op, and on a shared 2-core machine two threads made such tests ~10x slower. Results do not depend
    on it. Folders of tiny-model tests make it autouse in their conftest."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def test_vit_work(tiny_tiles: Path, tmp_path_factory) -> Path:
    """A work folder: the tiny cohort's tiles + ``features/timm-test_vit`` (random-init test_vit, 64-d)."""
    import torch

    from mstar.features.extract import extract_features

    out = tmp_path_factory.mktemp("test_vit_work")
    shutil.copytree(tiny_tiles / "tiles", out / "tiles")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extract_features(out, "timm:test_vit", workers=0, device="cpu", show_progress=False)
    finally:
        torch.set_num_threads(before)
    return out


@pytest.fixture(scope="session")
def tiny_tiles(tiny_cohort: Path, tmp_path_factory) -> Path:
    """The tiny cohort tiled at 0.5 µm/px, 256 px (``<dir>/tiles/*.h5``)."""
    from mstar.slide.batch import tile_many

    out = tmp_path_factory.mktemp("work")
    tile_many([tiny_cohort / "slides"], out, show_progress=False)
    return out


# ---- small extraction inputs: three slides of the tiny cohort (0.25 and 0.5 µm/px scans),
# five tiles each ----
TILES_PER_SLIDE = 5


def truncate_tiles(src: Path, dst: Path, n: int) -> None:
    """Copy a tiles file keeping its first ``n`` tiles (attrs unchanged)."""
    from mstar.slide.tiles_file import read_tiles, write_tiles

    coords, attrs = read_tiles(src)
    with h5py.File(src, "r") as f:
        fraction = np.asarray(f["tissue_fraction"][:])
    attrs = {k: v for k, v in attrs.items()}
    write_tiles(dst, coords[:n], fraction[:n], attrs)


@pytest.fixture(scope="session")
def few_tiles_template(tiny_tiles: Path, tmp_path_factory) -> Path:
    """A work folder with ``tiles/`` for 3 slides covering both read sizes (512 px at 0.25, 256 px at 0.5)."""
    from mstar.slide.tiles_file import read_tiles

    files = sorted((tiny_tiles / "tiles").glob("*.h5"))
    by_px: dict[int, list[Path]] = {}
    for p in files:
        by_px.setdefault(int(read_tiles(p)[1]["read_px"]), []).append(p)
    chosen = [ps[0] for ps in by_px.values()]
    chosen += [p for p in files if p not in chosen][: 3 - len(chosen)]
    out = tmp_path_factory.mktemp("few_tiles")
    for p in sorted(chosen):
        truncate_tiles(p, out / "tiles" / p.name, TILES_PER_SLIDE)
    return out


@pytest.fixture
def work(few_tiles_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the 3-slide work folder (tests write features into it)."""
    dst = tmp_path / "work"
    shutil.copytree(few_tiles_template, dst)
    return dst
