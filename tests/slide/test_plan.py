import pytest

from mstar.errors import MstarError
from mstar.slide.plan import plan_read


def test_40x_pyramid_reads_512_at_level0_for_half_micron_tiles():
    plan = plan_read(0.25, (1.0, 4.0, 16.0), target_mpp=0.5, tile_px=256)
    assert (plan.read_level, plan.read_px, plan.tile_px_level0) == (0, 512, 512)
    assert plan.tile_px_level0 * plan.mpp_level0 == pytest.approx(128.0)  # µm per tile side
    assert plan.tile_mpp == pytest.approx(0.5)
    assert plan.clam_exact


def test_closer_level_is_used_when_it_exists():
    plan = plan_read(0.25, (1.0, 2.0, 8.0), target_mpp=0.5, tile_px=256)
    assert (plan.read_level, plan.read_px, plan.tile_px_level0) == (1, 256, 512)


def test_scale_within_tolerance_is_snapped_and_real_mpp_recorded():
    plan = plan_read(0.499, (1.0,), target_mpp=0.5, tile_px=256)
    assert (plan.read_level, plan.read_px, plan.tile_px_level0) == (0, 256, 256)
    assert plan.tile_mpp == pytest.approx(0.499)


def test_never_reads_a_level_coarser_than_the_target():
    plan = plan_read(0.25, (1.0, 4.0), target_mpp=1.0, tile_px=224)
    assert plan.read_level == 1 and plan.read_px == 224 and plan.tile_px_level0 == 896
    plan = plan_read(0.25, (1.0, 4.0), target_mpp=0.9, tile_px=224)  # level 1 (1 µm/px) is too coarse
    assert plan.read_level == 0 and plan.tile_px_level0 == round(224 * 0.9 / 0.25)


def test_overlap_sets_the_stride_in_level0_pixels():
    plan = plan_read(0.25, (1.0, 4.0), target_mpp=0.5, tile_px=256, overlap_px=64)
    assert plan.step_px_level0 == 512 - 128


def test_inexact_level_downsample_drops_clam_attrs_only_when_the_read_differs():
    near = plan_read(0.25, (1.0, 2.0101), target_mpp=1.0, tile_px=128)
    assert near.read_level == 1 and near.read_px == 255 and near.clam_exact  # 512.6 px: within 1 px
    off = plan_read(0.25, (1.0, 3.9), target_mpp=1.0, tile_px=128)
    assert off.read_level == 1 and off.read_px == 131
    assert not off.clam_exact  # 131 px at 3.9 covers 510.9 level-0 px, not 512


@pytest.mark.parametrize("kwargs", [{"target_mpp": 0}, {"tile_px": 0}, {"overlap_px": 256}])
def test_bad_geometry_is_a_clear_error(kwargs):
    with pytest.raises(MstarError):
        plan_read(0.25, (1.0,), **{"target_mpp": 0.5, "tile_px": 256, **kwargs})
