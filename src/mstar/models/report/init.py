"""Optional initialisation of the report model's slide side from an mSTAR stage-1 checkpoint.

Reused: the stage-1 ``proj`` (Linear patch-feature → 512, the WSI branch's input projection) becomes the
report model's ``wsi_mapping`` when the shapes agree, i.e. a model built with ``d_vf=512`` and
``in_dim`` equal to the checkpoint's feature width. Not reused: ``vision_encoder.*`` (a TransMIL: Nystrom
attention + PPEG over the whole bag, whose layers have no counterpart in HistGen's region/WSI encoder),
and the text/gene encoders (the decoder learns its own vocabulary).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from mstar.errors import MstarError
from mstar.models.report.generator import ReportGenerator
from mstar.models.upstream import read_checkpoint

REUSED = {"proj.weight": "encoder.wsi_mapping.weight", "proj.bias": "encoder.wsi_mapping.bias"}


def _state_dict(checkpoint: str | os.PathLike | Mapping, name: str | None) -> tuple[dict, str]:
    where = name or ("the stage-1 checkpoint" if isinstance(checkpoint, Mapping) else str(Path(checkpoint)))
    blob = read_checkpoint(checkpoint)
    state = blob.get("model_state_dict", blob.get("state_dict", blob)) if isinstance(blob, Mapping) else None
    if not isinstance(state, Mapping):
        raise MstarError(f"{where}: not a state dict (expected {{'model_state_dict': {{...}}}})")
    return {k.removeprefix("module."): v for k, v in state.items()}, where


def init_from_stage1(model: ReportGenerator, checkpoint: str | os.PathLike | Mapping,
                     name: str | None = None) -> list[str]:
    """Copy the stage-1 ``proj`` into ``model.encoder.wsi_mapping``.

    Args:
        model: A report model built with ``d_vf`` = the checkpoint's projection width (512 for mSTAR).
        checkpoint: Path to, or the loaded dict of, a stage-1 checkpoint
            (``{'model_state_dict': {'proj.weight', 'proj.bias', 'vision_encoder.*', ...}}``; ``module.``
            prefixes are accepted).
        name: What to call the checkpoint in errors (default: its path, or "the stage-1 checkpoint").

    Returns:
        The checkpoint keys that were copied.

    Raises:
        MstarError: When the checkpoint has no ``proj`` or its shape differs from ``wsi_mapping``.
    """
    state, where = _state_dict(checkpoint, name)
    if "proj.weight" not in state:
        raise MstarError(f"{where}: no 'proj.weight' (the stage-1 patch projection) to initialise from")
    target = model.state_dict()
    weight = tuple(state["proj.weight"].shape)
    for src, dst in REUSED.items():
        if src in state and tuple(state[src].shape) != tuple(target[dst].shape):
            raise MstarError(f"{where}: '{src}' is {list(state[src].shape)} but the report model's {dst} is "
                             f"{list(target[dst].shape)}; build the model with in_dim={weight[-1]} and "
                             f"d_vf={weight[0]} to reuse it")
    copied = [src for src in REUSED if src in state]
    with torch.no_grad():
        for src in copied:
            target[REUSED[src]].copy_(state[src].to(target[REUSED[src]].dtype))
    return copied
