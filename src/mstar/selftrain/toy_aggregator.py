"""A small stage-1-format aggregator trained in seconds: for the demo (without a stage-1 run) and tests.

It is NOT stage 1: a ``proj`` + TransMIL trained to predict each slide's label (cancer type) from its
stored patch features with cross-entropy on the CLS token. Like stage 1 (whose losses also act on the CLS
token only) the per-patch output tokens then mix the patch's own (residual) content with slide context
learned through attention. Saved in the stage-1 layout
``{'model_state_dict': {proj.*, vision_encoder.*}}``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mstar.errors import MstarError
from mstar.models.transmil import TransMIL
from mstar.models.upstream import to_stage1_state_dict
from mstar.utils.atomic import atomic_path


def train_toy_stage1(features: str | os.PathLike, slide_labels: dict[str, str], out: str | os.PathLike, *,
                     dim: int = 32, epochs: int = 30, lr: float = 2e-3, max_patches: int = 256,
                     seed: int = 0) -> dict:
    """Train and save a toy stage-1 aggregator.

    Args:
        features: folder of ``<slide>.h5``/``.pt`` features (any layout :func:`resolve_feature_dir` accepts).
        slide_labels: ``{slide_id: label}``; slides without features are skipped.
        out: checkpoint path (``torch.save``).
        dim: token width (TransMIL with ``dim // 8``-wide heads).
        epochs, lr, max_patches, seed: training settings (Adam, one slide per step).

    Returns:
        ``{"checkpoint", "train_accuracy", "slides", "classes"}``.
    """
    from mstar.data.feature_dirs import feature_file, resolve_feature_dir
    from mstar.features.io import load_features

    folder = resolve_feature_dir(features)
    bags, labels = [], []
    for sid, label in sorted(slide_labels.items()):
        path = feature_file(folder, sid)
        if path is None:
            continue
        feats = load_features(path)[0]
        if len(feats):
            bags.append(torch.from_numpy(np.asarray(feats, np.float32)))
            labels.append(label)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise MstarError(f"{folder}: toy stage-1 aggregator needs slides of at least 2 labels, got {classes}")
    y = torch.tensor([classes.index(v) for v in labels])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TransMIL(in_dim=bags[0].shape[1], dim=dim, input_proj="linear")
    head = nn.Linear(dim, len(classes))
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(bags), generator=gen).tolist():
            bag = bags[i]
            if len(bag) > max_patches:
                bag = bag[torch.randperm(len(bag), generator=gen)[:max_patches]]
            out_i = model(bag.unsqueeze(0))
            loss = F.cross_entropy(head(out_i.embedding), y[i:i + 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = [int(head(model(b.unsqueeze(0)).embedding).argmax()) for b in bags]
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save({"model_state_dict": {k: v.detach().clone() for k, v in to_stage1_state_dict(model).items()}}, tmp)
    return {"checkpoint": str(out), "train_accuracy": float((torch.tensor(pred) == y).float().mean()),
            "slides": len(bags), "classes": classes}
