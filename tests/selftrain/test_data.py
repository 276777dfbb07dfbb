"""Patches, labels and targets of real (synthetic) slides: reads match extraction, steps are reproducible."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest
import torch

from mstar.features.encoders import create_encoder
from mstar.features.preprocess import preprocess_batch
from mstar.selftrain.cohort import load_slides, split_slides
from mstar.selftrain.data import PatchSteps, SlideReader, StepSampler
from mstar.selftrain.labels import NORMAL, patch_labels
from mstar.selftrain.targets import TargetStore, refresh_from_encoder
from mstar.selftrain.teacher import Teacher

from .conftest import ENCODER, FEATURES


@pytest.fixture(scope="module")
def slides(st_work):
    return load_slides(st_work, st_work / "features" / FEATURES)


def test_slides_pair_tiles_and_features(slides, st_work):
    assert len(slides) == len(list((st_work / "tiles").glob("*.h5")))
    with h5py.File(slides[0].features_file, "r") as f:
        np.testing.assert_array_equal(slides[0].coords, f["coords"][:])
    train, val = split_slides(slides, 0.2, seed=0)
    assert len(val) == 2 and not {s.slide_id for s in train} & {s.slide_id for s in val}
    assert split_slides(slides, 0.2, seed=0)[1] == val  # deterministic


def test_read_patches_reproduce_the_stored_features(slides):
    enc = create_encoder(ENCODER)
    reader = SlideReader(slides)
    for s in (0, len(slides) - 1):  # one 40x (512 px reads) and one 20x slide in the tiny cohort
        images = reader.read_input(s, [0, 3], enc.preprocess)  # (2, S, S, 3)
        with torch.no_grad():
            f = enc.model(preprocess_batch(images, enc.preprocess)).numpy()
        with h5py.File(slides[s].features_file, "r") as h5:
            np.testing.assert_allclose(f, h5["features"][[0, 3]], atol=1e-4)


def test_steps_are_reproducible_and_independent_of_order(slides):
    enc = create_encoder(ENCODER)
    data = PatchSteps(slides, 3, 4, enc.preprocess, None, seed=7)
    a, b = data[5], data[5]
    assert a["images"].shape == (12, 3, enc.preprocess.input_px, enc.preprocess.input_px)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["patch"], b["patch"])
    assert not torch.equal(a["patch"], data[6]["patch"])
    assert len(set(a["slide"].tolist())) == 3  # three different slides, four patches each
    other_rank = PatchSteps(slides, 3, 4, enc.preprocess, None, seed=7, rank=1)[5]
    assert not torch.equal(other_rank["patch"], a["patch"])
    # without augmentation an item's images are exactly what extraction feeds the encoder
    s, p = int(a["slide"][0]), int(a["patch"][0])
    direct = preprocess_batch(SlideReader(slides).read_input(s, [p], enc.preprocess), enc.preprocess)
    torch.testing.assert_close(a["images"][:1], direct)
    sampler = StepSampler(4)
    sampler.set_epoch(2)
    assert list(sampler) == [8, 9, 10, 11] and len(sampler) == 4


def test_synthetic_patch_labels_follow_the_truth_masks(slides, tiny_cohort):
    labels = patch_labels("auto", slides)
    truth = json.loads((tiny_cohort / "truth.json").read_text())
    types = {s["slide_id"]: c["cancer_type"] for c in truth["cases"] for s in c["slides"]}
    assert set(labels) == {s.slide_id for s in slides}
    counts = {"tumour": 0, "normal": 0}
    for s in slides:
        lab = labels[s.slide_id]
        assert set(lab) <= {"", NORMAL, types[s.slide_id]}
        mask = cv2.imread(str(tiny_cohort / "masks" / f"{s.slide_id}.png"), cv2.IMREAD_UNCHANGED)
        scale = s.attrs["mpp_level0"] / truth["mask_mpp"]
        for (x, y), label in zip(s.coords, lab):
            cx, cy = (int((x + s.attrs["tile_px_level0"] / 2) * scale),
                      int((y + s.attrs["tile_px_level0"] / 2) * scale))
            if label and mask[cy, cx] > 0:  # the label agrees with the mask at the tile centre in most cases
                counts["tumour" if label != NORMAL else "normal"] += int(
                    (mask[cy, cx] == 2) == (label != NORMAL))
    assert counts["tumour"] > 30 and counts["normal"] > 30
    assert patch_labels("none", slides) == {}


def test_target_cache_is_reused_and_ema_refresh_with_the_extractor_reproduces_it(slides, random_stage1,
                                                                                 tmp_path):
    teacher = Teacher(random_stage1)
    store = TargetStore(slides[:3])
    assert store.build(tmp_path, teacher, "sha-a", 4096, 0) == 3
    assert store.build(tmp_path, teacher, "sha-a", 4096, 0) == 0  # cached
    assert store.build(tmp_path, teacher, "sha-b", 4096, 0) == 3  # another aggregator: recomputed
    assert store.build(tmp_path, teacher, "sha-b", 4096, 0, rank=1, world_size=2) == 0
    store.open(tmp_path)
    stored = [np.asarray(a, np.float32) for a in store.arrays]
    assert stored[0].shape == (slides[0].n, 16)
    lookup = store.lookup(torch.tensor([1, 0]), torch.tensor([2, 5]))
    np.testing.assert_array_equal(lookup.numpy(), np.stack([stored[1][2], stored[0][5]]))
    enc = create_encoder(ENCODER)
    refresh_from_encoder(store, [0, 1, 2], enc.model, teacher, enc.preprocess, torch.device("cpu"), 16, 4096,
                         0)
    for i in range(3):  # the EMA of an unchanged encoder is the extractor: same features, same targets
        np.testing.assert_allclose(np.asarray(store.arrays[i], np.float32), stored[i], atol=2e-2)
