"""The upstream per-tile path, kept as the reference the fast path is checked and benchmarked against.

Upstream mSTAR (and CLAM) read each tile as a PIL image (``read_region(...).convert("RGB")``), apply
torchvision ``Resize`` -> ``ToTensor`` -> ``Normalize`` per tile, stack, and run the encoder in fp32 under
``no_grad``, one batch at a time in one process.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from mstar.features.preprocess import PreprocessConfig


def naive_transform(cfg: PreprocessConfig):
    """torchvision ``Compose([Resize((S, S)), ToTensor(), Normalize(mean, std)])`` on PIL images."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize((cfg.input_px, cfg.input_px)), transforms.ToTensor(),
                               transforms.Normalize(cfg.mean, cfg.std)])


def _pil_reader(slide_path: str | os.PathLike, mpp: float | None):
    """Per-tile PIL reads: OpenSlide directly when it opens the file (as upstream), else our reader."""
    from PIL import Image

    try:
        import openslide

        handle = openslide.OpenSlide(str(slide_path))
        def read(x, y, level, px):
            return handle.read_region((x, y), level, (px, px)).convert("RGB")

        return read, handle.close
    except Exception:  # noqa: BLE001 - fall back to our reader (tiffslide, plain images)
        from mstar.slide.reader import open_slide

        slide = open_slide(slide_path, mpp=mpp)
        return (lambda x, y, level, px: Image.fromarray(slide.read_region(x, y, level, px))), slide.close


def naive_features(slide_path: str | os.PathLike, coords: np.ndarray, read_level: int, read_px: int,
                   model: nn.Module, cfg: PreprocessConfig, batch_size: int = 32, mpp: float | None = None,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Features (N, D) float32 the upstream way (per-tile PIL, fp32, batch ``batch_size``, on ``device``)."""
    read, close = _pil_reader(slide_path, mpp)
    transform = naive_transform(cfg)
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(coords), batch_size):
                batch = coords[start:start + batch_size]
                tiles = [transform(read(int(x), int(y), read_level, read_px)) for x, y in batch]
                out.append(model(torch.stack(tiles).to(device)).float().cpu())  # (B, D)
    finally:
        close()
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
