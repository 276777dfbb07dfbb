"""The released mSTAR file format: a timm ViT-L/16 state_dict saved with torch.save, loaded strictly."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mstar.cli import app
from mstar.features.encoders import REGISTRY, VITL16_KWARGS
from mstar.features.extract import load_slide_tiles
from mstar.features.io import load_features
from mstar.features.reference import naive_features
from mstar.slide.tiles_file import read_tiles, write_tiles


def _random_vitl16() -> torch.nn.Module:
    """timm ViT-L/16 with the mSTAR constructor, filled quickly with seeded weights.

    LayerScale gammas are set to 0.5 instead of timm's 1e-5 init: with 1e-5 every block is nearly the
    identity, the CLS output hardly depends on the image, and a feature comparison would prove nothing.
    """
    import timm

    with torch.device("meta"):
        model = timm.create_model("vit_large_patch16_224", pretrained=False, **VITL16_KWARGS)
    model = model.to_empty(device="cpu").eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gamma"):
                p.fill_(0.5)
            elif "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=g)
    assert not list(model.buffers())
    return model


@pytest.mark.slow
def test_mstar_vitl16_checkpoint_reproduces_timm_forward(work, tmp_path):
    # two tiles of one slide, read as 512 px at 0.25 µm/px: the resize to 224 is exercised
    tf = next(p for p in sorted((work / "tiles").glob("*.h5")) if read_tiles(p)[1]["read_px"] == 512)
    for other in (work / "tiles").glob("*.h5"):
        if other != tf:
            other.unlink()
    coords, attrs = read_tiles(tf)
    write_tiles(tf, coords[:2], np.ones(2, np.float32), attrs)

    model = _random_vitl16()
    ckpt = tmp_path / "mSTAR.pth"
    torch.save(model.state_dict(), ckpt)  # what the official file is: a plain timm state_dict

    args = ["extract", str(work), "--encoder", "mstar-vitl16", "--checkpoint", str(ckpt), "--device", "cpu",
            "--workers", "0", "--precision", "fp32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    feats, c, fattrs = load_features(work / "features" / "mstar-vitl16" / tf.name)
    assert feats.shape == (2, 1024) and fattrs["encoder"] == "mstar-vitl16"
    assert fattrs["checkpoint"] == "mSTAR.pth"
    assert fattrs["dim"] == 1024 and fattrs["encoder_input_px"] == 224

    # timm's own forward, fed the upstream way (PIL read, Resize(224), ImageNet normalisation, fp32)
    t = load_slide_tiles(tf)
    cfg = REGISTRY["mstar-vitl16"].preprocess
    upstream = naive_features(t.slide_path, t.coords, t.read_level, t.read_px, model, cfg)
    f, u = torch.from_numpy(feats), torch.from_numpy(upstream)
    assert torch.nn.functional.cosine_similarity(f, u, dim=1).min().item() >= 0.999
    # the tile-dependent part is reproduced too (not only a shared direction of random weights)
    assert torch.nn.functional.cosine_similarity(f[:1], f[1:], dim=1).item() < 0.999
    assert torch.nn.functional.cosine_similarity(f[0] - f[1], u[0] - u[1], dim=0).item() >= 0.99
