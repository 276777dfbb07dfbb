"""One streaming pass over a cohort's bags with a stage-1 model: what zero- and few-shot scoring need.

Per case (its slides' bags concatenated) the pass keeps only small things: the patch-text cosine
``logits (N, C)`` (patch features → ``proj`` → L2-normalised, against the class embeddings) and the
L2-normalised slide embedding (``encode_slide`` on all patches). Query cases (val/test) also keep their
normalised projected patches in float16 (few-shot prototypes score them); support-pool cases (train) keep
only their ``top`` patches most similar to their own class text, which is all the text-guided prototype
of any support draw can use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from mstar.errors import MstarError

log = logging.getLogger(__name__)


@dataclass
class CaseEmbeddings:
    """Aligned with ``cases``; dict fields are keyed by case id."""

    cases: list[str]
    slide: np.ndarray                                   # (S, E) L2-normalised slide embeddings
    logits: list[np.ndarray]                            # (N_i, C) patch-text cosine per case
    patches: dict[str, np.ndarray] = field(default_factory=dict)   # (N_i, E) float16, query cases
    support: dict[str, np.ndarray] = field(default_factory=dict)   # (<=top, E) float32, support-pool cases
    support_scores: dict[str, np.ndarray] = field(default_factory=dict)  # (<=top,) their class logits
    dropped: list[str] = field(default_factory=list)

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.cases)}


@torch.no_grad()
def project_patches(model, x: Tensor) -> Tensor:
    """``(N, D)`` patch features → ``(N, E)`` L2-normalised ``proj`` outputs."""
    return F.normalize(model.proj(x.to(model.proj.weight.dtype)).float(), dim=-1)


@torch.no_grad()
def embed_cases(model, feature_dir: Path, table: pd.DataFrame, class_emb: Tensor, keep_patches=(),
                support_pool: Mapping[str, int] | None = None, top: int = 100, skip_missing: bool = False,
                show_progress: bool = False) -> CaseEmbeddings:
    """Embed every case of ``table`` (columns ``case``, ``slides``).

    Args:
        model: A stage-1 model in eval mode on its device.
        feature_dir: Folder of ``<slide>.h5``/``.pt`` features.
        table: One row per case.
        class_emb: ``(C, E)`` normalised class embeddings on the model's device.
        keep_patches: Case ids whose projected patches are kept (float16).
        support_pool: ``{case: class index}`` of cases whose top patches for that class are kept.
        top: Patches kept per support-pool case.
        skip_missing: Drop cases with missing or empty bags (with a warning) instead of failing.
        show_progress: Show a progress bar.
    """
    from mstar.data.bags import BagStore
    from mstar.utils.progress import track

    device = class_emb.device
    keep, pool = set(keep_patches), dict(support_pool or {})
    out = CaseEmbeddings([], np.zeros((0, class_emb.shape[1]), np.float32), [])
    slides_emb = []
    store = BagStore(feature_dir, table["case"].tolist(), [list(s) for s in table["slides"]],
                     skip_missing=skip_missing, dtype=torch.float32, cache=False)  # one case in RAM at a time
    empty = set(store.empty_cases())
    if empty and not skip_missing:
        raise MstarError(f"{feature_dir}: {len(empty)} case(s) have empty bags (no tissue tiles): "
                         f"{', '.join(sorted(empty)[:10])}; pass --skip-missing to drop them")
    out.dropped = [c for c in table["case"] if c not in store.index or c in empty]
    rows = [c for c in table["case"] if c in store.index and c not in empty]
    for case in track(rows, len(rows), "embedding cases", enabled=show_progress):
        x = store.bag(case).to(device)  # (N, D)
        if x.shape[1] != model.in_dim:
            raise MstarError(f"{feature_dir}: case {case} has {x.shape[1]}-d features, the stage-1 model "
                             f"expects {model.in_dim}-d; use the features it was trained on")
        z = project_patches(model, x)  # (N, E)
        logits = z @ class_emb.T  # (N, C)
        out.cases.append(case)
        out.logits.append(logits.cpu().numpy())
        slides_emb.append(F.normalize(model.encode_slide(x[None].float()).float(), dim=-1)[0].cpu().numpy())
        if case in keep:
            out.patches[case] = z.half().cpu().numpy()
        if case in pool:
            scores = logits[:, pool[case]]  # (N,)
            idx = torch.argsort(scores, descending=True)[:top]
            out.support[case] = z[idx].cpu().numpy()
            out.support_scores[case] = scores[idx].cpu().numpy()
    if out.dropped:
        log.warning("dropped %d case(s) without features: %s", len(out.dropped), ", ".join(out.dropped[:10]))
    if not out.cases:
        raise MstarError(f"{feature_dir}: no case of the manifest has features")
    out.slide = np.stack(slides_emb).astype(np.float32)
    return out
