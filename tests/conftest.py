"""Shared fixtures: the real data beside the project (skipped when absent) and tiny synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def tiny_tiles(tiny_cohort: Path, tmp_path_factory) -> Path:
    """The tiny cohort tiled at 0.5 µm/px, 256 px (``<dir>/tiles/*.h5``)."""
    from mstar.slide.batch import tile_many

    out = tmp_path_factory.mktemp("work")
    tile_many([tiny_cohort / "slides"], out, show_progress=False)
    return out
