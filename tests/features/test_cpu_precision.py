"""`--precision auto` on the CPU: native bf16 flags, then a timed probe; both cases through the logic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mstar.features.encoders import create_encoder
from mstar.features.extract import extract_features
from mstar.features.io import load_features
from mstar.features.precision import resolve_precision
from mstar.utils import cpu_precision as cp

AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.delenv(cp.ENV, raising=False)  # tests/conftest.py pins fp32 for every other test
    cp.cpu_precision.cache_clear()
    yield
    cp.cpu_precision.cache_clear()


def test_flags_are_read_from_cpuinfo():
    assert cp.native_bf16_flags(AMX) == ("amx_bf16", "avx512_bf16")
    assert cp.native_bf16_flags(ZEN4) == ("avx512_bf16",)
    assert cp.native_bf16_flags(OLD) == ()


def test_without_native_bf16_fp32_is_chosen_without_timing(monkeypatch):
    monkeypatch.setattr(cp, "bf16_speedup", lambda: pytest.fail("a CPU without bf16 must not be timed"))
    choice = cp.choose_cpu_precision(flags=cp.native_bf16_flags(OLD))
    assert choice.precision == "fp32" and choice.speedup is None and "no native bf16" in choice.reason


@pytest.mark.parametrize("speedup, want", [(3.2, "bf16"), (1.25, "bf16"), (1.1, "fp32"), (0.2, "fp32")])
def test_with_native_bf16_the_probe_decides(speedup, want):
    choice = cp.choose_cpu_precision(flags=("amx_bf16",), speedup=speedup)
    assert choice.precision == want and choice.speedup == speedup


def test_the_probe_times_a_transformer_block_and_the_environment_overrides(monkeypatch):
    ratio = cp.bf16_speedup(tokens=17, width=64, repeats=1)
    assert np.isfinite(ratio) and ratio > 0
    monkeypatch.setenv(cp.ENV, "1")
    assert cp.choose_cpu_precision(flags=()).precision == "bf16"
    monkeypatch.setenv(cp.ENV, "0")
    assert cp.choose_cpu_precision(flags=("amx_bf16",), speedup=9.0).precision == "fp32"


def test_auto_is_the_default_and_the_features_file_records_the_choice(work, monkeypatch):
    enc = create_encoder("timm:test_vit", random_init=True)
    cpu = torch.device("cpu")
    monkeypatch.setattr(cp, "native_bf16_flags", lambda cpuinfo=None: ("amx_bf16",))
    monkeypatch.setattr(cp, "bf16_speedup", lambda: 3.0)
    chosen = resolve_precision(None, enc, cpu)
    assert chosen == "bf16" and "amx_bf16" in chosen.note
    cp.cpu_precision.cache_clear()
    monkeypatch.setattr(cp, "native_bf16_flags", lambda cpuinfo=None: ())
    assert resolve_precision("auto", enc, cpu) == "fp32"
    assert resolve_precision("fp32", enc, cpu).note == "requested"
    # end to end: bf16 chosen by auto, recorded, and close to fp32 features
    cp.cpu_precision.cache_clear()
    monkeypatch.setenv(cp.ENV, "1")
    extract_features(work, enc, workers=0, show_progress=False)
    path = next((work / "features" / enc.folder_name).glob("*.h5"))
    feats, _, attrs = load_features(path)
    assert attrs["precision"] == "bf16" and attrs["precision_choice"] == f"auto: {cp.ENV}=1"
    assert attrs["encoder_forward"] == "bf16 weights"  # 32 tiles: compile=auto stays eager
    ref = extract_features(work, enc, workers=0, show_progress=False, precision="fp32", overwrite=True)
    assert (ref["status"] == "ok").all()
    ref_feats, _, ref_attrs = load_features(path)
    assert ref_attrs["precision"] == "fp32" and ref_attrs["precision_choice"] == "requested"
    assert ref_attrs["encoder_forward"] == "fp32"
    a, b = np.asarray(feats, np.float64), np.asarray(ref_feats, np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
