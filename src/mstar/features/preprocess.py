"""An encoder's input contract (pixels, mean/std, resolution, precision) and the batched preprocessing.

The tile is read as ``read_px`` pixels at the tiling's ``read_level`` and resized ONCE, straight to the
encoder's ``input_px`` (no intermediate resize to ``tile_px``), as a batched tensor op: bilinear with
antialiasing (``torch.nn.functional.interpolate(..., antialias=True)``), which is the same triangle filter as
Pillow's ``Image.resize(BILINEAR)`` used by torchvision's ``Resize`` on PIL images upstream. On CPU the
resize runs on uint8 (PyTorch's vectorised uint8 path, rounding like Pillow); on CUDA on float32.
Normalisation ``(x / 255 - mean) / std`` is one fused multiply-add.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("fp32", "bf16", "fp16")
INTERPOLATION = "bilinear-antialias"


@dataclass(frozen=True)
class PreprocessConfig:
    """What an encoder expects from a tile.

    Attributes:
        input_px: side of the square input image in pixels.
        mean: per-channel mean (RGB, in [0, 1] units).
        std: per-channel standard deviation.
        target_mpp: the resolution (µm/px) the encoder was trained at; tiles should match it.
        precision: preferred autocast precision on GPU (``fp32``, ``bf16`` or ``fp16``).
    """

    input_px: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    target_mpp: float = 0.5
    precision: str = "bf16"

    def as_attrs(self) -> dict:
        """Attributes recorded in every features file (``input_px``, ``mean``, ``std``, ...)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["interpolation"] = INTERPOLATION
        return d


@lru_cache(maxsize=16)
def _affine(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached per device: building them per batch would be a blocking host-to-GPU copy each time."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (1.0 / (255.0 * s)).to(device), (-m / s).to(device)  # x_norm = x_uint8 * scale + shift


def preprocess_batch(images: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Resize and normalise a batch of tiles for the encoder.

    Args:
        images: uint8 tiles, shape (B, H, W, 3) (as read), on any device.
        cfg: the encoder's preprocessing config.

    Returns:
        float32 tensor (B, 3, input_px, input_px) on the same device, contiguous.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B, H, W, 3) tiles, got {tuple(images.shape)} {images.dtype}")
    size = (cfg.input_px, cfg.input_px)
    if images.shape[0] == 0:
        return torch.empty((0, 3, *size), dtype=torch.float32, device=images.device)
    x = images.permute(0, 3, 1, 2)  # (B, 3, H, W), channels-last strides
    if tuple(x.shape[-2:]) != size:
        if x.device.type == "cpu":  # vectorised uint8 kernel; output rounded to uint8 like Pillow
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        else:  # uint8 antialias is CPU-only
            x = F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    scale, shift = _affine(tuple(cfg.mean), tuple(cfg.std), x.device)
    x = torch.addcmul(shift, x.float(), scale)  # (B, 3, S, S)
    return x.contiguous()
