"""Loss, momentum schedule, EMA, teacher targets, augmentation, student and config: exact values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from mstar.errors import MstarError
from mstar.selftrain.augment import Augment
from mstar.selftrain.config import SelfTrainConfig
from mstar.selftrain.ema import EMA, cosine_momentum
from mstar.selftrain.loss import self_train_loss
from mstar.selftrain.student import build_student
from mstar.selftrain.teacher import Teacher


def test_loss_is_one_minus_cosine_plus_lambda_times_ema_term():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, -1.0]])  # cos = 1/sqrt2 and -1
    f = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    fe = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # cos = 1 and 0
    terms = self_train_loss(z, t, f, fe, ema_weight=0.6)
    target = ((1 - 1 / math.sqrt(2)) + 2) / 2
    ema = (0 + 1) / 2
    assert terms["target"].item() == pytest.approx(target, abs=1e-6)
    assert terms["ema"].item() == pytest.approx(ema, abs=1e-6)
    assert terms["loss"].item() == pytest.approx(target + 0.6 * ema, abs=1e-6)


def test_loss_gradient_does_not_reach_the_ema_branch():
    f = torch.randn(4, 8, requires_grad=True)
    fe = torch.randn(4, 8, requires_grad=True)
    self_train_loss(torch.randn(4, 3), torch.randn(4, 3), f, fe)["loss"].backward()
    assert f.grad is not None and fe.grad is None


def test_cosine_momentum_schedule():
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    values = [cosine_momentum(s, 100, 0.9, 0.99) for s in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(values)) and values[0] == pytest.approx(0.9)


def test_ema_update_moves_parameters_and_stays_in_eval_mode():
    student = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(5.0)
    before = [p.clone() for p in ema.model.parameters()]
    ema.update(student, 0.75)
    for b, p, s in zip(before, ema.model.parameters(), student.parameters()):
        torch.testing.assert_close(p, 0.75 * b + 0.25 * s)
    assert torch.equal(ema.model[1].running_mean, torch.full((2,), 5.0))
    ema.train()
    assert not ema.model.training and not any(p.requires_grad for p in ema.parameters())


def test_teacher_targets_are_the_aggregator_tokens(random_stage1):
    from mstar.models.upstream import load_stage1_aggregator

    teacher = Teacher(random_stage1)
    assert (teacher.in_dim, teacher.dim) == (64, 16)
    x = torch.randn(23, 64)
    ref = load_stage1_aggregator(random_stage1, proj="checkpoint").eval()
    with torch.no_grad():
        expected = ref(x.unsqueeze(0)).tokens[0].numpy()
    np.testing.assert_allclose(teacher.targets(x.numpy()), expected, atol=1e-5)


def test_teacher_splits_large_slides_into_groups_that_cover_every_patch(random_stage1):
    import zlib

    from mstar.models.upstream import load_stage1_aggregator

    teacher = Teacher(random_stage1)
    x = torch.randn(25, 64)
    out = teacher.targets(x.numpy(), max_context=10, slide_id="s", seed=3)  # 3 groups of 9, 8, 8
    order = torch.randperm(25, generator=torch.Generator().manual_seed(zlib.crc32(b"3:s")))
    ref = load_stage1_aggregator(random_stage1, proj="checkpoint").eval()
    for idx in torch.tensor_split(order, 3):
        with torch.no_grad():
            expected = ref(x[idx].unsqueeze(0)).tokens[0].numpy()
        np.testing.assert_allclose(out[idx.numpy()], expected, atol=1e-5)


def test_teacher_rejects_features_of_another_width(random_stage1):
    with pytest.raises(MstarError, match=r"feats\.h5: 32-d features, but the aggregator random_stage1\.pt "
                                         r"projects 64-d"):
        Teacher(random_stage1).check_dim(32, "feats.h5", "fix it")


def test_augment_is_seeded_and_keeps_shape_and_dtype():
    tiles = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)
    a = Augment()(tiles, np.random.default_rng(1))
    b = Augment()(tiles, np.random.default_rng(1))
    assert a.shape == tiles.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, Augment()(tiles, np.random.default_rng(2)))
    assert torch.equal(Augment(geometric=False, jitter=0.0)(tiles, np.random.default_rng(0)), tiles)
    # geometry only: every output tile is one of the 8 symmetries of its input
    geo = Augment(jitter=0.0)(tiles, np.random.default_rng(5))
    for src, dst in zip(tiles, geo):
        variants = [torch.rot90(src, k, (0, 1)) for k in range(4)]
        variants += [v.flip(1) for v in variants]
        assert any(torch.equal(dst, v) for v in variants)


def test_colour_jitter_equals_torchvision_brightness_contrast_saturation_and_keeps_gray():
    import torchvision.transforms.v2.functional as TF

    from mstar.selftrain.augment import GRAY, colour_matrices

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(60, 200, (2, 12, 12, 3)).astype(np.uint8))
    b, c, s = np.array([1.08, 0.93]), np.array([0.95, 1.07]), np.array([1.1, 0.9])
    m = colour_matrices(b, c, s, np.zeros(2))
    xf = x.float()
    mean_gray = (xf.mean(dim=(1, 2)) @ GRAY).view(2, 1, 1, 1)
    ours = (torch.einsum("bhwc,bdc->bhwd", xf, m)
            + torch.tensor((1 - c) * b).float().view(2, 1, 1, 1) * mean_gray)
    for i in range(2):
        ref = x[i].permute(2, 0, 1).float() / 255
        ref = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(ref, b[i]), c[i]), s[i]) * 255
        torch.testing.assert_close(ours[i].permute(2, 0, 1), ref, atol=0.05, rtol=0)
    gray = torch.full((1, 4, 4, 3), 120, dtype=torch.uint8)  # saturation and hue leave gray unchanged
    out = Augment(geometric=False, jitter=0.1)(gray, np.random.default_rng(3))
    assert (out.max(-1).values - out.min(-1).values).max() <= 1


def test_student_starts_from_the_stage1_proj_and_checkpointing_gives_equal_gradients():
    proj = {"weight": torch.randn(16, 64), "bias": torch.randn(16)}
    grads = []
    for ckpt in (False, True):
        student, enc = build_student("timm:test_vit", None, proj, train_proj=True, grad_checkpointing=ckpt)
        torch.testing.assert_close(student.proj.weight, proj["weight"])
        x = torch.randn(2, 3, enc.preprocess.input_px, enc.preprocess.input_px,
                        generator=torch.Generator().manual_seed(0))
        f, z = student(x)
        (f.sum() + z.square().sum()).backward()
        grads.append({n: p.grad.clone() for n, p in student.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-5, rtol=1e-4)


def test_student_width_must_match_the_projection():
    with pytest.raises(MstarError, match="gives 64-d features but the aggregator's proj takes 32-d"):
        build_student("timm:test_vit", None, {"weight": torch.zeros(16, 32), "bias": torch.zeros(16)})


@pytest.mark.parametrize("field, value, message", [
    ("tiles", "", "'tiles' is required"),
    ("targets", "online", "'targets' must be one of stored, ema"),
    ("momentum_start", 1.5, "momentum_start <= momentum_end"),
    ("epochs", 0, "'epochs' must be at least 1"),
])
def test_config_validation_names_the_field(field, value, message):
    values = dict(tiles="t", features="f", stage1="a", encoder="e", out="o")
    values[field] = value
    with pytest.raises(MstarError, match=message):
        SelfTrainConfig(**values).validate()


def test_teacher_uses_the_landmarks_recorded_by_a_stage1_run(random_stage1, tmp_path):
    ckpt = torch.load(random_stage1, weights_only=True)
    ckpt["config"] = {"vision_args": {"num_landmarks": 4, "heads": 8}}
    torch.save(ckpt, tmp_path / "with_config.pt")
    assert Teacher(tmp_path / "with_config.pt").model.layer1.attn.num_landmarks == 4
    assert Teacher(random_stage1).model.layer1.attn.num_landmarks == 8  # TransMIL default dim // 2
    assert Teacher(tmp_path / "with_config.pt", num_landmarks=2).model.layer1.attn.num_landmarks == 2


def test_student_loads_its_initial_weights_strictly(tmp_path):
    import timm

    init = timm.create_model("test_vit", num_classes=0)
    torch.save(init.state_dict(), tmp_path / "init.pth")
    proj = {"weight": torch.zeros(16, 64), "bias": torch.zeros(16)}
    student, _ = build_student("timm:test_vit", str(tmp_path / "init.pth"), proj)
    for k, v in init.state_dict().items():
        assert torch.equal(student.backbone.state_dict()[k], v)
    assert student.backbone.training and all(p.requires_grad for p in student.backbone.parameters())
    assert not any(p.requires_grad for p in student.proj.parameters())  # frozen unless train_proj
    torch.save({"blocks.0.x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(MstarError, match=r"bad\.pth: not a checkpoint of test_vit"):
        build_student("timm:test_vit", str(tmp_path / "bad.pth"), proj)


def test_validation_figure_without_patch_labels_says_so_without_warnings(tmp_path):
    import warnings

    import pandas as pd

    from mstar.selftrain.outputs import plot_validation

    nan = float("nan")
    history = pd.DataFrame({"epoch": [0, 1, 2], "val_cosine": [0.5, 0.7, 0.8], "knn_bacc": [nan] * 3,
                            "linear_bacc": [nan] * 3, "train_loss": [nan, 1.0, 0.8],
                            "train_target": [nan, 0.9, 0.7], "train_ema": [nan, 0.1, 0.1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was "No artists with labels found to put in legend"
        path = plot_validation(history, tmp_path / "validation.png")
    assert path.stat().st_size > 1000
