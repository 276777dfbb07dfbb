import numpy as np
import pytest
import torch

from mstar.errors import MstarError
from mstar.features.checkpoints import save_encoder_checkpoint, sha256_file
from mstar.features.encoders import (
    REGISTRY,
    VITL16_KWARGS,
    TruncatedResNet50,
    create_encoder,
    encoder_spec,
    folder_name,
)


def test_registry_holds_the_issue_encoders():
    assert {"mstar-vitl16", "uni", "resnet50-trunc"} <= set(REGISTRY)
    for name in ("mstar-vitl16", "uni"):
        spec = REGISTRY[name]
        assert spec.timm_model == "vit_large_patch16_224"
        assert spec.timm_kwargs == {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0,
                                    "dynamic_img_size": True}
        p = spec.preprocess
        assert (p.input_px, p.mean, p.std, p.target_mpp, spec.dim) == (
            224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.5, 1024)
    assert REGISTRY["mstar-vitl16"].checkpoint_hint == "mSTAR.pth"
    assert REGISTRY["uni"].checkpoint_hint == "uni.bin"


def test_timm_encoder_is_seeded_and_carries_its_config():
    a, b = create_encoder("timm:test_vit"), create_encoder("timm:test_vit")
    assert a.dim == 64 and a.preprocess.input_px == 160 and a.preprocess.mean == (0.5, 0.5, 0.5)
    assert a.encoder_sha == b.encoder_sha and a.encoder_sha.startswith("random-init:")
    assert not a.model.training and not any(p.requires_grad for p in a.model.parameters())
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        torch.testing.assert_close(a.model(x), b.model(x))
    assert a.folder_name == "timm-test_vit" == folder_name("timm:test_vit")


@pytest.mark.parametrize("name,match", [
    ("mstar-vitl16", r"--encoder mstar-vitl16 needs its weights: pass --checkpoint mSTAR\.pth"),
    ("uni", r"pass --checkpoint uni\.bin"),
    ("resnet50-trunc", r"pass --checkpoint resnet50"),
    ("nope", r"--encoder nope: unknown encoder \(known: mstar-vitl16, uni, resnet50-trunc"),
    ("timm:not_a_model_xyz", r"timm has no model 'not_a_model_xyz'"),
])
def test_clear_errors(name, match):
    with pytest.raises(MstarError, match=match):
        create_encoder(name)


def test_resnet50_trunc_loads_a_full_imagenet_state_dict(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(1)
    full = resnet50(weights=None).eval()
    torch.save(full.state_dict(), tmp_path / "resnet50.pth")
    enc = create_encoder("resnet50-trunc", tmp_path / "resnet50.pth")
    assert isinstance(enc.model, TruncatedResNet50) and enc.dim == 1024
    assert enc.encoder_sha == sha256_file(tmp_path / "resnet50.pth")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        h = full.maxpool(full.relu(full.bn1(full.conv1(x))))
        ref = full.layer3(full.layer2(full.layer1(h))).mean(dim=(2, 3))
        torch.testing.assert_close(enc.model(x), ref)
    # an already-truncated file (CLAM's) loads too
    torch.save(enc.model.state_dict(), tmp_path / "trunc.pth")
    assert create_encoder("resnet50-trunc", tmp_path / "trunc.pth").dim == 1024


def test_wrong_checkpoint_is_a_one_line_error(tmp_path):
    import timm

    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), tmp_path / "small.pth")
    with pytest.raises(MstarError, match=r"small\.pth: not a checkpoint of vit_large_patch16_224: .*missing"):
        create_encoder("mstar-vitl16", tmp_path / "small.pth")


def test_timm_checkpoint_and_stage2_name(tmp_path):
    import timm

    torch.manual_seed(3)
    model = timm.create_model("test_vit", num_classes=0).eval()
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        ref = model(x)
        torch.testing.assert_close(create_encoder("timm:test_vit", tmp_path / "plain.pth").model(x), ref)
    prep = encoder_spec("timm:test_vit").preprocess
    ckpt = save_encoder_checkpoint(model, tmp_path / "s2-tiny.safetensors", name="s2-tiny",
                                   timm_model="test_vit", timm_kwargs={"num_classes": 0}, preprocess=prep)
    enc = create_encoder("s2-tiny", ckpt)
    assert enc.name == "s2-tiny" and enc.dim == 64 and enc.preprocess == prep and enc.timm_model == "test_vit"
    with torch.inference_mode():
        torch.testing.assert_close(enc.model(x), ref)
    with pytest.raises(MstarError, match="its sidecar names the encoder 's2-tiny'; pass --encoder s2-tiny"):
        create_encoder("other", ckpt)
    with pytest.raises(MstarError, match="has no sidecar plain.json"):
        create_encoder("s2-tiny", tmp_path / "plain.pth")


def test_vitl16_meta_build_has_the_upstream_layout():
    """The architecture (no weights) has the timm key layout of mSTAR.pth / uni.bin: LayerScale, 24 blocks."""
    import timm

    with torch.device("meta"):
        model = timm.create_model("vit_large_patch16_224", pretrained=False, **VITL16_KWARGS)
    keys = model.state_dict().keys()
    assert "blocks.23.ls2.gamma" in keys and "blocks.24.norm1.weight" not in keys
    assert "head.weight" not in keys
    assert model.num_features == 1024
    assert np.isclose(sum(p.numel() for p in model.parameters()) / 1e6, 303.35, atol=0.1)
