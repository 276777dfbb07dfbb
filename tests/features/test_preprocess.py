import numpy as np
import pytest
import torch
from PIL import Image

from mstar.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, preprocess_batch
from mstar.features.reference import naive_transform


def _tiles(n=3, px=256, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, px // 8, px // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(base.repeat(8, axis=1).repeat(8, axis=2))  # blocky, like tissue at 8 px scale


def test_no_resize_is_exact_normalisation():
    cfg = PreprocessConfig(input_px=32)
    x = torch.from_numpy(_tiles(2, 32))
    out = preprocess_batch(x, cfg)
    ref = (x.permute(0, 3, 1, 2).float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD).view(1, 3, 1, 1)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("read_px,input_px", [(256, 224), (512, 224), (256, 160), (128, 224)])
def test_batched_resize_matches_pil_path(read_px, input_px):
    cfg = PreprocessConfig(input_px=input_px)
    tiles = _tiles(3, read_px)
    fast = preprocess_batch(torch.from_numpy(tiles), cfg)
    transform = naive_transform(cfg)
    naive = torch.stack([transform(Image.fromarray(t)) for t in tiles])
    assert fast.shape == naive.shape == (3, 3, input_px, input_px)
    # uint8 antialiased bilinear (same filter as Pillow): within ~2 grey levels anywhere, ~0 on average
    level = 1 / (255 * min(IMAGENET_STD))
    assert (fast - naive).abs().max() <= 2.5 * level
    assert (fast - naive).abs().mean() <= 0.2 * level
    cos = torch.nn.functional.cosine_similarity(fast.flatten(1), naive.flatten(1))
    assert cos.min() > 0.9999


def test_empty_batch_and_bad_input():
    cfg = PreprocessConfig(input_px=16)
    assert preprocess_batch(torch.zeros(0, 40, 40, 3, dtype=torch.uint8), cfg).shape == (0, 3, 16, 16)
    with pytest.raises(ValueError):
        preprocess_batch(torch.zeros(1, 3, 16, 16), cfg)


def test_attrs_record_the_contract():
    cfg = PreprocessConfig(input_px=160, mean=(0.5,) * 3, std=(0.5,) * 3, target_mpp=0.5, precision="bf16")
    a = cfg.as_attrs()
    assert a == {"input_px": 160, "mean": [0.5] * 3, "std": [0.5] * 3, "target_mpp": 0.5, "precision": "bf16",
                 "interpolation": "bilinear-antialias"}
