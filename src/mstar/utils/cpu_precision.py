"""Does this CPU run bf16 matrix work faster than fp32? (`--precision auto` on the CPU.)

Intel CPUs with AMX (Sapphire Rapids and later) run bf16 matrix products several times faster than fp32;
CPUs with AVX512-BF16 but no AMX may or may not gain; CPUs without either emulate bf16 and lose. The answer
takes two steps, both cached for the process:

1. the CPU's flags (``/proc/cpuinfo``: ``amx_bf16``, ``avx512_bf16``; else torch's reported capability):
   without native bf16 the answer is fp32 and nothing is timed;
2. with native bf16, a timed probe: one ViT-S-sized transformer block (attention, MLP, layer norms; 16
   sequences of 197 tokens of width 384) under bf16 autocast against fp32, the best of a few repeats after a
   warm-up (under a second). bf16 is chosen when it is at least ``MIN_SPEEDUP`` faster: matrix products
   alone can gain while the rest of a block loses, so the probe times a whole block.

``MSTAR_CPU_BF16=1`` or ``=0`` skips both and decides (a lab that benchmarked its machines, or a test).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MIN_SPEEDUP = 1.2
ENV = "MSTAR_CPU_BF16"


@dataclass(frozen=True)
class CpuPrecision:
    """The choice and why: ``precision`` (``bf16``/``fp32``), the native flags seen and the probe's speedup
    (bf16 over fp32; None when not timed)."""

    precision: str
    flags: tuple[str, ...]
    speedup: float | None
    reason: str


def native_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The bf16 flags of this CPU (``amx_bf16``, ``avx512_bf16``), from ``/proc/cpuinfo`` (or the text
    given), else from torch's capability string (``AMX`` on builds that report it)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    found = tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)
    if not found and not cpuinfo:
        import torch

        if "AMX" in str(torch.backends.cpu.get_cpu_capability()).upper():
            found = ("amx_bf16",)
    return found


def bf16_speedup(tokens: int = 197, width: int = 384, repeats: int = 3) -> float:
    """fp32 time / bf16-autocast time of a ViT-S-sized transformer block on the CPU (> 1: bf16 is faster)."""
    import torch

    x = torch.randn(16, tokens, width)  # (B, T, C)
    layer = torch.nn.TransformerEncoderLayer(width, width // 64, 4 * width, dropout=0.0, batch_first=True,
                                             norm_first=True, activation="gelu").eval()

    def timed(bf16: bool) -> float:
        best = float("inf")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            layer(x)  # warm-up (weight casts, kernel choice)
            for _ in range(repeats):
                start = time.perf_counter()
                layer(x)
                best = min(best, time.perf_counter() - start)
        return best

    return timed(False) / timed(True)


def choose_cpu_precision(flags: tuple[str, ...] | None = None, speedup: float | None = None) -> CpuPrecision:
    """bf16 when the CPU has native bf16 and the probe finds it at least ``MIN_SPEEDUP`` faster, else
    fp32. ``flags``/``speedup`` given = not measured (tests; recorded figures)."""
    forced = os.environ.get(ENV)
    if forced in ("0", "1"):
        precision = "bf16" if forced == "1" else "fp32"
        return CpuPrecision(precision, (), None, f"{ENV}={forced}")
    flags = native_bf16_flags() if flags is None else flags
    if not flags:
        return CpuPrecision("fp32", (), None, "no native bf16 on this CPU (no amx_bf16/avx512_bf16)")
    speedup = bf16_speedup() if speedup is None else speedup
    if speedup >= MIN_SPEEDUP:
        return CpuPrecision("bf16", flags, speedup,
                            f"{'+'.join(flags)}; bf16 {speedup:.2f}x fp32 in the probe")
    return CpuPrecision("fp32", flags, speedup, f"{'+'.join(flags)}, but bf16 only {speedup:.2f}x fp32 in "
                        f"the probe (< {MIN_SPEEDUP})")


@lru_cache(maxsize=1)
def cpu_precision() -> CpuPrecision:
    """:func:`choose_cpu_precision` for this machine, measured once per process."""
    return choose_cpu_precision()


@contextmanager
def pinned_cpu_precision(precision: str) -> Iterator[None]:
    """Within the block, :func:`cpu_precision` answers ``precision`` (``fp32`` or ``bf16``) without probing
    (through ``MSTAR_CPU_BF16``, so subprocesses see it too); the previous setting is restored after.
    ``mstar demo`` pins fp32, so that its figures are the same on every machine."""
    before = os.environ.get(ENV)
    os.environ[ENV] = "1" if precision == "bf16" else "0"
    cpu_precision.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        cpu_precision.cache_clear()
