"""The patch-encoder registry: a name -> (model, preprocessing config), weights only from local files.

Names:

- ``mstar-vitl16``: the released mSTAR patch extractor (timm ``vit_large_patch16_224`` with
  ``img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True``), 1024-d;
  weights ``--checkpoint mSTAR.pth`` (a plain timm state_dict), loaded strictly.
- ``uni``: the same architecture and key layout, weights ``uni.bin``.
- ``resnet50-trunc``: ImageNet ResNet-50 cut after ``layer3`` + global average pooling, 1024-d (CLAM's
  baseline); weights: a torchvision or timm ``resnet50`` state_dict (``layer4``/``fc`` are dropped) or an
  already truncated one.
- ``timm:<model>``: any timm model with ``num_classes=0``, seeded random init unless ``--checkpoint``
  is given (experiments, tests, the demo use ``timm:test_vit``).
- any other name: a stage-2 checkpoint whose sidecar JSON (``checkpoints.py``) names its architecture.

Nothing is downloaded: a registered encoder without ``--checkpoint`` is an error naming the flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mstar.errors import MstarError
from mstar.features.checkpoints import (
    load_state_dict_file,
    load_strict,
    read_sidecar,
    sha256_file,
    sha256_weights,
)
from mstar.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

RANDOM_INIT_SEED = 0
VITL16_KWARGS = {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0,
                 "dynamic_img_size": True}  # the upstream mSTAR / UNI constructor


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: how to build it and what it expects.

    Attributes:
        name: registry name (also the features folder name, ``:`` replaced by ``-``).
        description: one line for ``mstar encoders``.
        preprocess: the input contract.
        dim: feature dimension D.
        checkpoint_hint: the usual weights file name; None when random init is allowed.
        timm_model: timm architecture (None for non-timm encoders).
        timm_kwargs: ``timm.create_model`` keyword arguments.
        build: builds the architecture (random init); defaults to ``timm.create_model``.
        prepare_state: adapts a loaded state_dict before the strict load (e.g. drops ResNet ``layer4``).
    """

    name: str
    description: str
    preprocess: PreprocessConfig
    dim: int | None
    checkpoint_hint: str | None
    timm_model: str | None = None
    timm_kwargs: dict = field(default_factory=dict)
    build: Callable[[], nn.Module] | None = None
    prepare_state: Callable[[dict], dict] | None = None

    def build_model(self) -> nn.Module:
        if self.build is not None:
            return self.build()
        import timm

        return timm.create_model(self.timm_model, pretrained=False, **self.timm_kwargs)


@dataclass
class Encoder:
    """A ready patch encoder: ``model(x[B, 3, S, S]) -> [B, D]`` in eval mode, plus its contract.

    Attributes:
        name: encoder name as given.
        model: the module (CPU, eval mode).
        preprocess: the input contract.
        dim: feature dimension D.
        encoder_sha: sha256 of the checkpoint file, or ``random-init:<sha256 of the weights>``.
        checkpoint: the weights file, if any.
        timm_model: timm architecture (for stage 2 and the sidecar format).
        timm_kwargs: its ``timm.create_model`` keyword arguments.
        forwards: the forwards built for it (:func:`mstar.features.forward.encoder_forward`), by device,
            precision and compile choice.
    """

    name: str
    model: nn.Module
    preprocess: PreprocessConfig
    dim: int
    encoder_sha: str
    checkpoint: str | None = None
    timm_model: str | None = None
    timm_kwargs: dict = field(default_factory=dict)
    forwards: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def folder_name(self) -> str:
        """The output folder name: ``features/<folder_name>/`` (``timm:test_vit`` -> ``timm-test_vit``)."""
        return folder_name(self.name)


def folder_name(name: str) -> str:
    """File-system-safe form of an encoder name."""
    return name.replace(":", "-").replace("/", "-").replace("\\", "-")


class TruncatedResNet50(nn.Module):
    """ResNet-50 up to ``layer3`` (stride 16, 1024 channels) + global average pooling -> (B, 1024)."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        full = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = full.conv1, full.bn1, full.relu, full.maxpool
        self.layer1, self.layer2, self.layer3 = full.layer1, full.layer2, full.layer3
        self.num_features = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, S/4, S/4)
        x = self.layer3(self.layer2(self.layer1(x)))  # (B, 1024, S/16, S/16)
        return x.mean(dim=(2, 3))  # (B, 1024)


def _drop_resnet_head(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}


REGISTRY: dict[str, EncoderSpec] = {
    "mstar-vitl16": EncoderSpec(
        "mstar-vitl16", "mSTAR patch extractor (ViT-L/16, 1024-d), self-taught from UNI",
        PreprocessConfig(224, IMAGENET_MEAN, IMAGENET_STD, 0.5, "bf16"), 1024, "mSTAR.pth",
        "vit_large_patch16_224", dict(VITL16_KWARGS)),
    "uni": EncoderSpec(
        "uni", "UNI (ViT-L/16, 1024-d), the initialisation of mSTAR",
        PreprocessConfig(224, IMAGENET_MEAN, IMAGENET_STD, 0.5, "bf16"), 1024, "uni.bin",
        "vit_large_patch16_224", dict(VITL16_KWARGS)),
    "resnet50-trunc": EncoderSpec(
        "resnet50-trunc", "ImageNet ResNet-50 cut after layer3 + average pooling (1024-d), CLAM baseline",
        PreprocessConfig(224, IMAGENET_MEAN, IMAGENET_STD, 0.5, "fp32"), 1024, "resnet50-19c8e357.pth",
        build=TruncatedResNet50, prepare_state=_drop_resnet_head),
}


def _timm_spec(name: str) -> EncoderSpec:
    import timm

    arch = name.split(":", 1)[1]
    if not timm.is_model(arch):
        raise MstarError(f"--encoder {name}: timm has no model {arch!r} (see timm.list_models())")
    cfg = timm.get_pretrained_cfg(arch)
    cfg = cfg.to_dict() if cfg is not None else {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    prep = PreprocessConfig(size, mean, std, 0.5, "bf16")
    return EncoderSpec(name, f"timm {arch} (random init unless --checkpoint)", prep, None, None, arch,
                       {"num_classes": 0})


def _sidecar_spec(name: str, checkpoint: str | os.PathLike) -> EncoderSpec | None:
    meta = read_sidecar(checkpoint)
    if meta is None:
        return None
    if meta["name"] != name:
        raise MstarError(f"{checkpoint}: its sidecar names the encoder {meta['name']!r}; "
                         f"pass --encoder {meta['name']}")
    p = meta["preprocess"]
    prep = PreprocessConfig(int(p["input_px"]), tuple(p["mean"]), tuple(p["std"]), float(p["target_mpp"]),
                            str(p.get("precision", "bf16")))
    kwargs = {**meta.get("timm_kwargs", {}), "num_classes": 0}
    return EncoderSpec(name, f"stage-2 checkpoint ({meta['timm_model']})", prep, meta.get("dim"),
                       str(checkpoint), meta["timm_model"], kwargs)


def encoder_spec(name: str, checkpoint: str | os.PathLike | None = None) -> EncoderSpec:
    """Look up ``name``: registry, then ``timm:<model>``, then the sidecar of ``checkpoint``."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("timm:"):
        return _timm_spec(name)
    if checkpoint is not None and (spec := _sidecar_spec(name, checkpoint)) is not None:
        return spec
    known = ", ".join([*REGISTRY, "timm:<model>"])
    hint = ""
    if checkpoint is not None:
        sidecar = Path(checkpoint).with_suffix(".json").name
        hint = f"; {checkpoint} has no sidecar {sidecar} naming its architecture"
    raise MstarError(f"--encoder {name}: unknown encoder (known: {known}, or a stage-2 checkpoint with its "
                     f"sidecar JSON){hint}")


def list_encoders() -> list[EncoderSpec]:
    """The registered encoders (``timm:<model>`` and stage-2 names are open-ended and not listed)."""
    return list(REGISTRY.values())


def _build_from_state(spec: EncoderSpec, state: dict, checkpoint: Path) -> nn.Module:
    """Architecture without random init (meta device) filled by a strict load; else a normal build."""
    try:
        with torch.device("meta"):
            model = spec.build_model()
    except Exception:  # noqa: BLE001 - some constructors cannot run on meta; build normally then
        model = None
    if model is not None:
        load_strict(model, state, checkpoint, spec.timm_model or spec.name)
        if not any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
            return model
    model = spec.build_model()  # non-persistent buffers need the real constructor
    load_strict(model, state, checkpoint, spec.timm_model or spec.name)
    return model


def create_encoder(name: str, checkpoint: str | os.PathLike | None = None, *,
                   random_init: bool = False) -> Encoder:
    """Build a patch encoder on the CPU in eval mode.

    Args:
        name: a registered name, ``timm:<model>``, or the name in a stage-2 checkpoint's sidecar.
        checkpoint: local weights (``.pth``/``.bin``/``.pt``/``.safetensors``), loaded strictly.
        random_init: allow a registered encoder without weights (speed benchmarks only); weights are then
            seeded (seed 0) and ``encoder_sha`` is ``random-init:<hash of the weights>``.

    Raises:
        MstarError: unknown name, missing checkpoint (names ``--checkpoint``), or a checkpoint whose keys or
            shapes do not match the architecture.
    """
    spec = encoder_spec(name, checkpoint)
    if checkpoint is None and spec.checkpoint_hint is not None and not random_init:
        raise MstarError(f"--encoder {name} needs its weights: pass --checkpoint {spec.checkpoint_hint} "
                         "(a local file; nothing is downloaded)")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        state = load_state_dict_file(checkpoint)
        if spec.prepare_state is not None:
            state = spec.prepare_state(state)
        model = _build_from_state(spec, state, checkpoint)
        sha = sha256_file(checkpoint)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = spec.build_model()
        sha = f"random-init:{sha256_weights(model)}"
    model.eval().requires_grad_(False)
    dim = spec.dim or int(getattr(model, "num_features", 0))
    if not dim:
        with torch.inference_mode():
            dim = int(model(torch.zeros(1, 3, spec.preprocess.input_px, spec.preprocess.input_px)).shape[-1])
    return Encoder(name, model, spec.preprocess, dim, sha, str(checkpoint) if checkpoint else None,
                   spec.timm_model, dict(spec.timm_kwargs))
