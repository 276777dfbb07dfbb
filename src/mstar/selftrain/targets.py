"""Teacher targets per slide: computed once from the stored features and cached, or refreshed in memory.

Cache layout (``<out>/targets/``): ``<slide>.npy`` float16 ``(N, E)`` (memory-mapped when read, so a large
cohort is never held in RAM) and ``<slide>.json`` with what it was computed from (aggregator hash, features
file size and mtime, context size, seed). A cache entry whose provenance differs is recomputed. Files are
written atomically, so concurrent ranks and killed runs never leave a torn file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mstar.selftrain.cohort import SelfTrainSlide
from mstar.selftrain.teacher import Teacher
from mstar.utils.atomic import atomic_path, write_text_atomic


def _provenance(slide: SelfTrainSlide, aggregator_sha: str, max_context: int, seed: int) -> dict:
    stat = slide.features_file.stat()
    return {"aggregator_sha256": aggregator_sha, "features_file": str(slide.features_file.resolve()),
            "features_bytes": stat.st_size, "features_mtime_ns": stat.st_mtime_ns, "n": slide.n,
            "max_context_patches": max_context, "seed": seed}


class TargetStore:
    """Per-slide target arrays, looked up by ``(slide index, patch index)``.

    Args:
        slides: the slides, in the index order used by the data (training and held-out).
    """

    def __init__(self, slides: Sequence[SelfTrainSlide]) -> None:
        self.slides = list(slides)
        self.arrays: list[np.ndarray | None] = [None] * len(self.slides)

    def build(self, folder: Path, teacher: Teacher, aggregator_sha: str, max_context: int, seed: int,
              rank: int = 0, world_size: int = 1) -> int:
        """Compute this rank's missing or stale cache entries (slides ``rank::world_size``).

        Returns:
            How many slides this rank computed.
        """
        from mstar.features.io import load_features

        folder.mkdir(parents=True, exist_ok=True)
        done = 0
        for i, slide in enumerate(self.slides):
            if i % world_size != rank:
                continue
            meta = _provenance(slide, aggregator_sha, max_context, seed)
            npy, js = folder / f"{slide.slide_id}.npy", folder / f"{slide.slide_id}.json"
            if npy.exists() and js.exists() and json.loads(js.read_text()) == meta:
                continue
            feats, _, _ = load_features(slide.features_file)
            teacher.check_dim(int(feats.shape[1]), str(slide.features_file),
                              "pass --features extracted with the stage-1 patch encoder")
            targets = teacher.targets(feats, max_context, slide.slide_id, seed).astype(np.float16)  # (N, E)
            with atomic_path(npy) as tmp:
                np.save(tmp, targets)
            write_text_atomic(js, json.dumps(meta, indent=1) + "\n")
            done += 1
        return done

    def open(self, folder: Path) -> None:
        """Memory-map every slide's cached targets."""
        self.arrays = [np.load(folder / f"{s.slide_id}.npy", mmap_mode="r") for s in self.slides]

    def set(self, index: int, targets: np.ndarray) -> None:
        """Replace one slide's targets (in memory: the EMA-refreshed mode)."""
        self.arrays[index] = targets

    def lookup(self, slide: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
        """``(B, E)`` float32 targets of the patches ``(slide[b], patch[b])``."""
        rows = [np.asarray(self.arrays[int(s)][int(p)], dtype=np.float32) for s, p in zip(slide, patch)]
        return torch.from_numpy(np.stack(rows))

    def slide_targets(self, index: int, patches: np.ndarray) -> np.ndarray:
        """``(k, E)`` float32 targets of some patches of one slide."""
        return np.asarray(self.arrays[index][np.asarray(patches)], dtype=np.float32)


@torch.no_grad()
def refresh_from_encoder(store: TargetStore, indices: Sequence[int], encoder: torch.nn.Module,
                         teacher: Teacher, preprocess, device: torch.device, batch: int, max_context: int,
                         seed: int, bf16: bool = False) -> None:
    """The ``targets=ema`` mode: re-extract every patch of the slides ``indices`` with ``encoder`` (the EMA
    backbone), run the teacher over them and keep the targets in memory (float16).

    Costs one extraction pass over those slides per refresh.
    """
    import contextlib

    from mstar.features.preprocess import preprocess_batch
    from mstar.selftrain.data import SlideReader

    reader = SlideReader(store.slides)
    try:
        for i in indices:
            slide = store.slides[i]
            feats = []
            for start in range(0, slide.n, batch):
                images = reader.read_input(i, range(start, min(start + batch, slide.n)),
                                           preprocess)  # (b, S, S, 3)
                x = preprocess_batch(images, preprocess).to(device)  # (b, 3, S, S)
                ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with ctx:
                    feats.append(encoder(x).float().cpu())  # (b, D)
            targets = teacher.targets(torch.cat(feats), max_context, slide.slide_id, seed)  # (N, E)
            store.set(i, targets.astype(np.float16))
    finally:
        reader.close()
