"""Checkpoint files: strict loading of plain state_dicts, hashes, and the stage-2 encoder format.

Accepted weight files: ``.pth``/``.pt``/``.bin`` (``torch.save`` of a state_dict, loaded with
``weights_only=True``) and ``.safetensors``. A state_dict wrapped once under ``state_dict``/``model`` or
carrying DDP's ``module.`` prefix is unwrapped; anything else must match the architecture exactly.

Stage-2 format (``mstar.encoder/1``), written by :func:`save_encoder_checkpoint`: the weights are a plain
timm state_dict (``<name>.safetensors`` or ``.pth``) and a sidecar ``<name>.json`` beside them names the
architecture, so ``mstar extract --encoder <name> --checkpoint <name>.safetensors`` rebuilds it::

    {"format": "mstar.encoder/1", "name": "mstar-s2", "timm_model": "vit_large_patch16_224",
     "timm_kwargs": {"img_size": 224, "patch_size": 16, "init_values": 1e-05, "num_classes": 0,
                     "dynamic_img_size": true},
     "dim": 1024, "parent": "mstar-vitl16",
     "preprocess": {"input_px": 224, "mean": [...], "std": [...], "target_mpp": 0.5, "precision": "bf16"}}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from mstar.errors import MstarError
from mstar.features.preprocess import PreprocessConfig
from mstar.run.checkpoint import save_checkpoint, unreadable_reason
from mstar.utils.atomic import atomic_path, write_text_atomic

SIDECAR_FORMAT = "mstar.encoder/1"
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file (read in 4 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sha256_weights(model: nn.Module) -> str:
    """Hex sha256 over a model's state_dict (names and bytes): identifies random-init weights."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.pth``/``.pt``/``.bin`` or ``.safetensors`` onto the CPU.

    Raises:
        MstarError: missing file, pickled Python objects, or no tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: checkpoint not found; check the --checkpoint path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch/safetensors raise many types
        message = (f"{path}: cannot read this checkpoint ({unreadable_reason(path, exc)}); it must be a "
                   "plain state_dict saved with torch.save(model.state_dict()) or a .safetensors file")
        raise MstarError(message) from exc
    inner = state.get("model_state_dict") if isinstance(state, dict) else None
    if isinstance(inner, dict) and any(str(k).startswith("vision_encoder.") for k in inner):
        raise MstarError(f"{path}: a stage-1 checkpoint (a slide aggregator, from `mstar pretrain`), not "
                         "patch encoder weights; it goes to --stage1, and --checkpoint takes the patch "
                         "encoder's")
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors_only = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    if not state or not tensors_only:
        raise MstarError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming what differs.

    Meta-device models (built without initialisation) take the tensors by assignment.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
        raise MstarError(f"{path}: not a checkpoint of {what}: {'; '.join(parts)} keys; is it the right file "
                         "for this --encoder?")
    on_meta = any(t.is_meta for t in own.values())
    model.load_state_dict(state, strict=True, assign=on_meta)


def sidecar_path(checkpoint: str | os.PathLike) -> Path:
    """``<checkpoint without suffix>.json``: where a stage-2 checkpoint names its architecture."""
    return Path(checkpoint).with_suffix(".json")


def read_sidecar(checkpoint: str | os.PathLike) -> dict | None:
    """The ``mstar.encoder/1`` sidecar of ``checkpoint``, or None when there is none."""
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MstarError(f"{path}: unreadable encoder sidecar ({exc}); rewrite it or remove it") from exc
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        return None
    for key in ("name", "timm_model", "preprocess"):
        if key not in meta:
            raise MstarError(f"{path}: encoder sidecar lacks {key!r} (format {SIDECAR_FORMAT})")
    return meta


def save_encoder_checkpoint(model: nn.Module, path: str | os.PathLike, *, name: str, timm_model: str,
                            timm_kwargs: dict, preprocess: PreprocessConfig,
                            parent: str | None = None) -> Path:
    """Write a patch encoder so that ``mstar extract --encoder NAME --checkpoint PATH`` loads it.

    Args:
        model: the timm model (``timm.create_model(timm_model, **timm_kwargs)``), on any device.
        path: weights file, ``.safetensors`` (preferred) or ``.pth``; the sidecar goes to ``<path>.json``.
        name: the encoder name (also the features folder name).
        timm_model: timm architecture name.
        timm_kwargs: keyword arguments of ``timm.create_model`` (must include ``num_classes=0``).
        preprocess: the input contract features must be extracted with.
        parent: the encoder it was initialised from (provenance only).

    Returns:
        The weights path.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
    else:
        save_checkpoint(path, state)
    dim = int(getattr(model, "num_features", 0)) or None
    meta = {"format": SIDECAR_FORMAT, "name": name, "timm_model": timm_model,
            "timm_kwargs": dict(timm_kwargs), "dim": dim, "parent": parent, "weights": path.name,
            "sha256": sha256_file(path),
            "preprocess": {**preprocess.as_attrs()}}
    meta["preprocess"].pop("interpolation", None)
    write_text_atomic(sidecar_path(path), json.dumps(meta, indent=2) + "\n")
    return path
