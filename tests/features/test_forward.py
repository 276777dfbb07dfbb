"""The encoder forward: bf16 weights on the CPU, the compile decision, padding and the eager fallback."""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.features import forward as fw
from mstar.features.encoders import create_encoder

CPU = torch.device("cpu")


@pytest.fixture()
def enc():
    torch.manual_seed(0)
    return create_encoder("timm:test_vit", random_init=True)


def test_compile_decision(monkeypatch):
    monkeypatch.setattr(fw, "compiler_available", lambda: True)
    many = fw.COMPILE_MIN_TILES
    assert fw.should_compile("on", CPU, "fp32", 1)[0] is True
    assert fw.should_compile("off", CPU, "bf16", 10**6)[0] is False
    assert fw.should_compile("auto", CPU, "bf16", many) == (True, f"auto: {many} tiles in bf16 on the CPU")
    assert fw.should_compile("auto", CPU, "bf16", many - 1)[0] is False
    small = fw.COMPILE_REFERENCE_PARAMS // 10  # a 10x smaller encoder gains 10x less per tile
    assert fw.compile_min_tiles(small) == 10 * many
    assert fw.should_compile("auto", CPU, "bf16", 5 * many, small)[0] is False
    assert fw.should_compile("auto", CPU, "bf16", 10 * many, small)[0] is True
    assert fw.should_compile("auto", CPU, "fp32", many)[0] is False
    assert fw.should_compile("auto", torch.device("cuda"), "bf16", many)[0] is False
    monkeypatch.setattr(fw, "compiler_available", lambda: False)
    ok, why = fw.should_compile("auto", CPU, "bf16", many)
    assert not ok and "no C++ compiler" in why
    with pytest.raises(MstarError, match="--compile fast"):
        fw.should_compile("fast", CPU, "bf16", many)


def test_compiler_lookup(monkeypatch):
    monkeypatch.setattr(fw.shutil, "which", lambda name: "/usr/bin/clang++" if name == "clang++" else None)
    assert fw.compiler_available()
    monkeypatch.setattr(fw.shutil, "which", lambda name: None)
    assert not fw.compiler_available()


def test_bf16_weights_on_the_cpu_match_fp32_and_leave_the_model_alone(enc):
    x = torch.randn(5, 3, 224, 224)  # (B, 3, S, S)
    with torch.inference_mode():
        ref = enc.model(x)  # (5, D)
        forward = fw.encoder_forward(enc, CPU, "bf16")
        y = forward(x)
    assert forward.mode == "bf16 weights" and y.dtype == torch.float32 and y.shape == ref.shape
    assert F.cosine_similarity(y, ref).min() > 0.999
    assert all(p.dtype == torch.float32 for p in enc.model.parameters())  # the copy is bf16, not the model
    assert next(forward.model.parameters()).dtype == torch.bfloat16
    assert fw.encoder_forward(enc, CPU, "bf16") is forward  # built once per encoder and setting
    assert fw.encoder_forward(enc, CPU, "fp32").mode == "fp32"
    compiled = fw.encoder_forward(enc, CPU, "bf16", "on", batch_size=8)
    assert compiled is not forward and compiled.model is forward.model  # one bf16 copy per encoder
    enc.model = create_encoder("timm:test_vit", random_init=True).model  # new weights: a new forward
    assert fw.encoder_forward(enc, CPU, "bf16") is not forward


def test_bf16_copy_converts_parameters_and_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).eval()
    copy16 = fw.bf16_copy(model)
    assert all(t.dtype == torch.bfloat16 for t in [*copy16.parameters(), copy16[1].running_mean])
    assert copy16[1].num_batches_tracked.dtype == torch.int64  # integer buffers untouched
    assert all(t.dtype == torch.float32 for t in model.parameters())
    assert not any(p.requires_grad for p in copy16.parameters())
    x = torch.randn(5, 4)
    torch.testing.assert_close(copy16(x.bfloat16()).float(), model(x), rtol=0.02, atol=0.02)


def test_compiled_forward_pads_short_batches_and_falls_back_on_failure(enc, monkeypatch, caplog):
    shapes = []

    def fake_compile(model, **kwargs):
        assert kwargs == {"dynamic": False, "mode": "max-autotune-no-cudagraphs"}

        def run(x):
            assert torch._inductor.config.freezing  # set while the graph compiles and runs
            shapes.append(tuple(x.shape))
            if len(shapes) > 1:
                raise RuntimeError("inductor: no working C++ compiler\nlong traceback")
            return model(x)
        return run

    monkeypatch.setattr(fw.torch, "compile", fake_compile)
    forward = fw.EncoderForward(fw.bf16_copy(enc.model), CPU, "bf16", compile_model=True, batch_size=4)
    assert forward.mode == "compiled bf16 weights"
    x = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        eager = fw.EncoderForward(fw.bf16_copy(enc.model), CPU, "bf16")(x)
        y = forward(x)  # padded to the compiled batch size, then cut back
        assert shapes == [(4, 3, 224, 224)] and y.shape == (3, enc.dim)
        torch.testing.assert_close(y, eager, rtol=0, atol=0.05)
        with caplog.at_level("WARNING", logger="mstar.features.extract"):
            z = forward(x)  # the compiled call fails: warned once, eager from then on
    assert "torch.compile of the encoder failed (inductor: no working C++ compiler); running it eagerly" \
        in caplog.text
    assert forward.compiled is None and forward.mode == "bf16 weights"
    torch.testing.assert_close(z, eager, rtol=0, atol=0)


def test_compiled_call_runs_under_autocast_where_the_weights_stay_fp32(enc, monkeypatch):
    seen = []

    def fake_compile(model, **kwargs):
        def run(x):
            seen.append(torch.is_autocast_enabled("cpu"))
            return model(x)
        return run

    monkeypatch.setattr(fw.torch, "compile", fake_compile)
    forward = fw.EncoderForward(enc.model, CPU, "bf16", compile_model=True, batch_size=2)  # fp32 weights
    assert forward.mode == "compiled autocast bf16"
    with torch.inference_mode():
        forward(torch.randn(2, 3, 224, 224))
    assert seen == [True]


def test_a_compile_that_fails_at_once_leaves_an_eager_forward(enc, monkeypatch, caplog):
    def no_dynamo(model, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(fw.torch, "compile", no_dynamo)
    with caplog.at_level("WARNING", logger="mstar.features.extract"):
        forward = fw.EncoderForward(fw.bf16_copy(enc.model), CPU, "bf16", compile_model=True)
    assert forward.compiled is None and forward.mode == "bf16 weights"
    assert "Dynamo is not supported on this Python" in caplog.text
    with torch.inference_mode():
        assert forward(torch.randn(2, 3, 224, 224)).shape == (2, enc.dim)


def _inductor_builds_cpu_kernels() -> bool:
    """Whether torch.compile works at all here (a C++ compiler and the headers inductor needs)."""
    if not fw.compiler_available():
        return False
    try:
        return bool(torch.compile(lambda t: t * 2 + 1)(torch.ones(3)).eq(3).all())
    except Exception:  # noqa: BLE001 - any failure means: not on this machine
        return False


@pytest.mark.slow
def test_really_compiled_forward_matches_eager(enc):
    if not _inductor_builds_cpu_kernels():
        pytest.skip("torch.compile cannot build CPU kernels on this machine (no C++ compiler or headers)")
    x = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        eager = fw.EncoderForward(fw.bf16_copy(enc.model), CPU, "bf16")(x)
        forward = fw.EncoderForward(fw.bf16_copy(enc.model), CPU, "bf16", compile_model=True, batch_size=4)
        y = forward(x)
    assert forward.mode == "compiled bf16 weights"  # no fallback happened
    assert F.cosine_similarity(y, eager).min() > 0.999
