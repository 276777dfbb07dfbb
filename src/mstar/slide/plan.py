"""Physical tile geometry: which pyramid level to read, how many pixels, and the resize to the tile size.

A tile is ``tile_px`` pixels at ``target_mpp`` µm/px, i.e. ``tile_px * target_mpp`` µm on a side. On a 40x
pyramid (0.25 µm/px, downsamples 1/4/16) a 256 px tile at 0.5 µm/px covers 128 µm = 512 level-0 px and
is read as 512 px at level 0 (level 1 is already 1 µm/px, too coarse), then resized to 256.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mstar.errors import MstarError

MPP_TOLERANCE = 0.05  # 5 %: a 0.499 µm/px scan is "0.5 µm/px"; 0.25 vs 0.5 is not.


@dataclass(frozen=True)
class ReadPlan:
    """How tiles of one slide are read. All sizes in pixels; ``*_level0`` in level-0 pixels."""

    mpp_level0: float          # µm/px of level 0
    target_mpp: float          # requested µm/px of the output tile
    tile_px: int               # output tile side
    tile_px_level0: int        # footprint side at level 0
    tile_mpp: float            # actual µm/px of the output tile (= mpp_level0 * tile_px_level0 / tile_px)
    read_level: int            # pyramid level read
    read_downsample: float     # downsample of that level
    read_px: int               # pixels read at read_level (then resized to tile_px)
    overlap_px: int            # overlap between neighbours, in output px
    step_px_level0: int        # grid stride at level 0

    @property
    def clam_exact(self) -> bool:
        """True when CLAM's ``read_region(coord, read_level, (read_px, read_px))`` covers exactly the tile."""
        return abs(self.read_px * self.read_downsample - self.tile_px_level0) <= 1.0

    def as_attrs(self) -> dict:
        return asdict(self)


def plan_read(mpp_level0: float, level_downsamples: tuple[float, ...], target_mpp: float = 0.5,
              tile_px: int = 256, overlap_px: int = 0, tolerance: float = MPP_TOLERANCE) -> ReadPlan:
    """Choose the read level and sizes for tiles of ``tile_px`` at ``target_mpp``.

    The scale ``target_mpp / mpp_level0`` is snapped to 1 when within ``tolerance`` (no pointless
    resampling of a 0.499 µm/px scan). The read level is the coarsest whose resolution is still at least
    as fine as the target (within tolerance), so tiles are only ever downsampled, never upsampled beyond
    the tolerance.
    """
    if target_mpp <= 0 or tile_px <= 0:
        raise MstarError(f"--target-mpp and --tile-px must be positive (got {target_mpp}, {tile_px})")
    if not 0 <= overlap_px < tile_px:
        raise MstarError(f"--overlap-px must be in [0, tile_px) (got {overlap_px} for tile_px {tile_px})")
    scale = target_mpp / mpp_level0  # level-0 px per output px
    if abs(scale - 1.0) <= tolerance:
        scale = 1.0
    if scale < 1.0 - tolerance:
        # Upsampling: the scan is coarser than the target. Allowed, but recorded honestly.
        pass
    tile_px_level0 = max(1, round(tile_px * scale))
    candidates = [i for i, d in enumerate(level_downsamples) if d <= scale * (1.0 + tolerance)]
    level = max(candidates, key=lambda i: level_downsamples[i]) if candidates else 0
    down = float(level_downsamples[level])
    read_px = max(1, round(tile_px_level0 / down))
    step = max(1, tile_px_level0 - round(overlap_px * scale))
    return ReadPlan(
        mpp_level0=float(mpp_level0), target_mpp=float(target_mpp), tile_px=int(tile_px),
        tile_px_level0=int(tile_px_level0), tile_mpp=float(mpp_level0 * tile_px_level0 / tile_px),
        read_level=int(level), read_downsample=down, read_px=int(read_px), overlap_px=int(overlap_px),
        step_px_level0=int(step),
    )
