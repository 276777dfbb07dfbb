"""Validation of the student, every epoch: held-out student-target cosine and patch-label probes.

Fixed patches are drawn once (seeded): up to ``val_patches_per_slide`` of every held-out slide, and of up
to ``probe_slides`` training slides with labels. Metrics:

- ``train_cosine``: the same on the probe patches of training slides (the generalisation gap);
- ``val_cosine``: mean over held-out patches of ``cos(proj(f_theta(x)), T)``, where ``T`` is always the
  target computed from the STORED features (a fixed yardstick, also when training targets come from the
  EMA encoder);
- ``knn_bacc`` / ``linear_bacc``: balanced accuracy on held-out patches of a k-NN / linear probe fitted on
  the training slides' patches, using the backbone features ``f_theta(x)`` (what extraction will produce).

The patches are read (and resized to the encoder input) once and kept in memory when they fit in
``cache_bytes``; no augmentation.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from mstar.eval.bootstrap import bootstrap_ci_weighted, weighted_mean_stats
from mstar.eval.probes import balanced_accuracy, balanced_accuracy_ci, probe_predictions
from mstar.features.preprocess import PreprocessConfig, preprocess_batch
from mstar.selftrain.cohort import SelfTrainSlide
from mstar.selftrain.data import SlideReader

CACHE_BYTES = 512 * 2**20


@dataclass
class EvalItem:
    """Fixed validation patches of one slide."""

    slide: int              # index into the evaluator's slides
    patches: np.ndarray     # (k,) patch indices
    held_out: bool
    labels: np.ndarray      # (k,) str, "" = unlabelled
    targets: np.ndarray | None = None  # (k, E) stored-feature targets
    images: torch.Tensor | None = None  # (k, S, S, 3) uint8 cache


def _pick(n: int, k: int, seed: int, slide_id: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{seed}:val:{slide_id}".encode()))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


class Evaluator:
    """Scores a student on fixed patches.

    Args:
        slides: every slide (training and held-out), indexed like ``targets``.
        held_out: indices of the held-out slides.
        train: indices of the training slides.
        targets: a built :class:`~mstar.selftrain.targets.TargetStore` of the stored-feature targets.
        labels: ``{slide_id: (N,) labels}``.
        preprocess: the encoder's input contract.
        patches_per_slide, probe_slides, knn_k, seed, batch: see :class:`SelfTrainConfig`.
    """

    def __init__(self, slides: list[SelfTrainSlide], held_out: list[int], train: list[int], targets,
                 labels: dict, preprocess: PreprocessConfig, patches_per_slide: int = 64,
                 probe_slides: int = 32, knn_k: int = 10, seed: int = 0, batch: int = 64,
                 cache_bytes: int = CACHE_BYTES) -> None:
        self.reader = SlideReader(slides)
        self.preprocess, self.knn_k, self.seed, self.batch = preprocess, knn_k, seed, batch
        self.items: list[EvalItem] = []
        for i in held_out:
            s = slides[i]
            p = _pick(s.n, patches_per_slide, seed, s.slide_id)
            lab = labels.get(s.slide_id, np.full(s.n, "", dtype=object))[p]
            self.items.append(EvalItem(i, p, True, lab, targets.slide_targets(i, p)))
        labelled = [i for i in train
                    if slides[i].slide_id in labels and (labels[slides[i].slide_id] != "").any()]
        rng = np.random.default_rng(seed)
        if len(labelled) > probe_slides:
            labelled = sorted(rng.choice(labelled, size=probe_slides, replace=False).tolist())
        for i in labelled:
            s = slides[i]
            lab = labels[s.slide_id]
            candidates = np.flatnonzero(lab != "")
            p = candidates[_pick(len(candidates), patches_per_slide, seed, s.slide_id)]
            self.items.append(EvalItem(i, p, False, lab[p], targets.slide_targets(i, p)))
        px = preprocess.input_px
        self.cache = sum(len(it.patches) for it in self.items) * px * px * 3 <= cache_bytes

    @property
    def n_patches(self) -> int:
        return sum(len(it.patches) for it in self.items)

    def _images(self, item: EvalItem) -> torch.Tensor:
        if item.images is not None:
            return item.images
        images = self.reader.read_input(item.slide, item.patches, self.preprocess)  # (k, S, S, 3)
        if self.cache:
            item.images = images
        return images

    @torch.no_grad()
    def _forward(self, student, device: torch.device, bf16: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        was_training = student.training
        student.eval()
        out = []
        try:
            for item in self._images_iter():
                images = item[1]
                fs, zs = [], []
                for start in range(0, len(images), self.batch):
                    x = preprocess_batch(images[start:start + self.batch], self.preprocess).to(device)
                    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16
                           else contextlib.nullcontext())
                    with ctx:
                        f, z = student(x)  # (b, D), (b, E)
                    fs.append(f.float().cpu())
                    zs.append(z.float().cpu())
                out.append((torch.cat(fs).numpy(), torch.cat(zs).numpy()))
        finally:
            student.train(was_training)
        return out

    def _images_iter(self):
        for item in self.items:
            yield item, self._images(item)

    def __call__(self, student, device: torch.device, bf16: bool = False, n_boot: int = 0) -> dict:
        """Metrics of ``student``.

        With ``n_boot > 0`` also ``entries`` (bootstrap CIs) and ``arrays`` (per held-out patch: ``cosine``,
        probe ``labels`` and the ``knn``/``linear`` predictions) for paired before/after comparisons.
        """
        outputs = self._forward(student, device, bf16)
        cos, train_cos, test_f, test_y, train_f, train_y = [], [], [], [], [], []
        for item, (f, z) in zip(self.items, outputs):
            keep = item.labels != ""
            t = item.targets
            c = (z * t).sum(1) / (np.linalg.norm(z, axis=1) * np.linalg.norm(t, axis=1) + 1e-8)  # (k,)
            if item.held_out:
                cos.append(c)
                test_f.append(f[keep])
                test_y.append(item.labels[keep])
            else:
                train_cos.append(c)
                train_f.append(f[keep])
                train_y.append(item.labels[keep])
        cos = np.concatenate(cos) if cos else np.empty(0)
        result: dict = {"val_cosine": float(cos.mean()) if cos.size else float("nan"),
                        "train_cosine": (float(np.concatenate(train_cos).mean()) if train_cos
                                         else float("nan")),
                        "knn_bacc": float("nan"), "linear_bacc": float("nan")}
        entries: dict = {}
        arrays: dict = {"cosine": cos}
        if n_boot and cos.size:
            entries["cosine"] = bootstrap_ci_weighted(weighted_mean_stats({"c": cos}), cos.size, n_boot,
                                                      self.seed)["c"]
        if train_f and test_f:
            tx, ty = np.concatenate(train_f), np.concatenate(train_y).astype(str)
            vx, vy = np.concatenate(test_f), np.concatenate(test_y).astype(str)
            if len(vy) and len(np.unique(ty)) >= 2:
                preds = probe_predictions(tx, ty, vx, self.knn_k, self.seed)
                arrays["labels"] = vy
                for name, pred in preds.items():
                    arrays[name] = pred
                    result[f"{name}_bacc"] = balanced_accuracy(vy, pred)
                    if n_boot:
                        entries[f"{name}_balanced_accuracy"] = balanced_accuracy_ci(vy, pred, n_boot,
                                                                                    self.seed)
                result["probe_n_train"], result["probe_n_test"] = len(ty), len(vy)
                result["probe_classes"] = sorted(set(ty) | set(vy))
        if n_boot:
            result["entries"] = entries
            result["arrays"] = arrays
        return result
