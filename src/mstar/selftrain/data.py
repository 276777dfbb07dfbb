"""Stage-2 batches: random patches of random slides, read from the slides through the tiles files.

Item ``k`` of :class:`PatchSteps` is the whole batch of global step ``k`` on one rank: ``slides_per_step``
training slides, ``patches_per_slide`` random patches of each, read at the tiling's level and size,
resized to the encoder input exactly like extraction (batched antialiased uint8 resize), augmented, then
normalised. Every
random choice comes from ``numpy.random.default_rng([seed, rank, k])``, so a resumed run sees the same
batches as an uninterrupted one whatever the number of DataLoader workers. Workers open their own slide
handles (a small LRU per process; handles are never pickled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mstar.features.preprocess import PreprocessConfig, preprocess_batch
from mstar.selftrain.augment import Augment
from mstar.selftrain.cohort import SelfTrainSlide
from mstar.slide.handles import SlideHandles


class SlideReader:
    """Reads patches of many slides with at most ``max_open`` open handles (least recently used closed)."""

    def __init__(self, slides: Sequence[SelfTrainSlide], max_open: int = 8) -> None:
        self.slides = list(slides)
        self.max_open = max_open
        self._handles = SlideHandles(self.slides, max_open)

    def read(self, s: int, patches: Sequence[int]) -> torch.Tensor:
        """Patches ``patches`` of slide ``s`` as uint8 ``(k, read_px, read_px, 3)``."""
        t = self.slides[s]
        slide = self._handles.get(s)
        out = np.empty((len(patches), t.read_px, t.read_px, 3), np.uint8)
        for i, p in enumerate(patches):
            x, y = t.coords[int(p)]
            out[i] = slide.read_region(int(x), int(y), t.read_level, t.read_px)
        return torch.from_numpy(out)

    def read_input(self, s: int, patches: Sequence[int], preprocess: PreprocessConfig) -> torch.Tensor:
        """Patches as uint8 ``(k, S, S, 3)`` at the encoder's input size (resized like extraction)."""
        tiles = self.read(s, patches)  # (k, h, w, 3)
        size = preprocess.input_px
        if tiles.shape[1] != size:
            x = tiles.permute(0, 3, 1, 2)  # (k, 3, h, w)
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
            tiles = x.permute(0, 2, 3, 1).contiguous()  # (k, S, S, 3)
        return tiles

    def close(self) -> None:
        self._handles.close()


def sample_step(rng: np.random.Generator, sizes: Sequence[int], slides_per_step: int,
                patches_per_slide: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Which slides (uniform, without replacement when possible) and which of their patches."""
    n = len(sizes)
    chosen = rng.choice(n, size=slides_per_step, replace=slides_per_step > n)
    picks = [rng.choice(sizes[s], size=patches_per_slide, replace=patches_per_slide > sizes[s])
             for s in chosen]
    return chosen, picks


class PatchSteps(Dataset):
    """Map-style dataset: item ``k`` = the batch of global step ``k`` for ``rank``.

    Items: ``{"images": float32 (B, 3, S, S), "slide": int64 (B,), "patch": int64 (B,)}`` with
    ``B = slides_per_step * patches_per_slide``; ``slide`` indexes ``slides``.
    """

    def __init__(self, slides: Sequence[SelfTrainSlide], slides_per_step: int, patches_per_slide: int,
                 preprocess: PreprocessConfig, augment: Augment | None, seed: int, rank: int = 0) -> None:
        self.reader = SlideReader(slides)
        self.sizes = [s.n for s in slides]
        self.slides_per_step, self.patches_per_slide = slides_per_step, patches_per_slide
        self.preprocess, self.augment = preprocess, augment
        self.seed, self.rank = seed, rank

    def __len__(self) -> int:
        return 2**62  # indexed by global step through StepSampler

    def __getitem__(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        chosen, picks = sample_step(rng, self.sizes, self.slides_per_step, self.patches_per_slide)
        tiles = torch.cat([self.reader.read_input(int(s), p, self.preprocess)
                           for s, p in zip(chosen, picks)])  # (B, S, S, 3): slides may differ in read_px
        if self.augment is not None:
            tiles = self.augment(tiles, rng)
        images = preprocess_batch(tiles, self.preprocess)  # (B, 3, S, S)
        slide = torch.from_numpy(np.repeat(chosen, self.patches_per_slide).astype(np.int64))  # (B,)
        patch = torch.from_numpy(np.concatenate(picks).astype(np.int64))  # (B,)
        return {"images": images, "slide": slide, "patch": patch}


class StepSampler(Sampler[int]):
    """Yields the global steps of one epoch: ``epoch * steps .. (epoch + 1) * steps - 1``.

    The epoch is read from ``epoch_fn`` when the epoch's iterator is created (the trainer's count of
    processed epochs). Lightning's own :meth:`set_epoch` call comes too late after a resume: the first
    iterator is created before it, and the resumed epoch would replay epoch 0's batches.
    """

    def __init__(self, steps_per_epoch: int, epoch_fn: Callable[[], int] | None = None) -> None:
        self.steps = steps_per_epoch
        self.epoch = 0
        self.epoch_fn = epoch_fn

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        epoch = int(self.epoch_fn()) if self.epoch_fn is not None else self.epoch
        return iter(range(epoch * self.steps, (epoch + 1) * self.steps))

    def __len__(self) -> int:
        return self.steps


def make_loader(dataset: PatchSteps, steps_per_epoch: int, workers: int, pin_memory: bool,
                epoch_fn: Callable[[], int] | None = None) -> DataLoader:
    """The training DataLoader (the dataset already batches: ``batch_size=None``)."""
    return DataLoader(dataset, batch_size=None, sampler=StepSampler(steps_per_epoch, epoch_fn),
                      num_workers=workers, pin_memory=pin_memory, prefetch_factor=2 if workers > 0 else None,
                      persistent_workers=False)
