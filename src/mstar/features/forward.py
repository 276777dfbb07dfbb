"""How the encoder runs one batch of tiles in the chosen precision.

* GPU: autocast in the precision (weights stay fp32; tensor cores do the matrix work).
* CPU, bf16: a bf16 copy of the weights and bf16 inputs. Autocast would cast every fp32 weight to bf16 at
  every call (0.6 GB per batch for a ViT-L); casting once is 1.15x faster for ViT-L/16 on an AVX512-BF16 CPU
  (BENCHMARKS.md) at cosine >= 0.9998 to fp32.
* CPU, optionally: ``torch.compile`` (inductor, max-autotune, frozen weights) of that bf16 copy, another
  ~1.1x for ViT-L/16 at the price of ~45 s of compilation per process. ``compile="auto"`` does it only when
  it pays: on the CPU, in bf16, for at least :data:`COMPILE_MIN_TILES` tiles, and with a C++ compiler on
  the machine (inductor builds C++ kernels). A compile failure falls back to the eager forward with a warning.

A forward is built once per encoder, device, precision and mode and kept on the :class:`Encoder`
(``encoder.forwards``), so repeated extractions in one process (``mstar predict``, benchmarks) compile once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil

import torch
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.features.encoders import Encoder

log = logging.getLogger("mstar.features.extract")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("auto", "on", "off")
COMPILE_MIN_TILES = 2000  # ~45 s of compilation pays back after ~1,500 ViT-L tiles on a 2-core CPU
COMPILERS = ("g++", "c++", "clang++")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def compiler_available() -> bool:
    """Whether a C++ compiler that inductor can use is on the PATH."""
    return any(shutil.which(name) for name in COMPILERS)


def should_compile(mode: str, device: torch.device, precision: str, tiles: int) -> tuple[bool, str]:
    """Whether to ``torch.compile`` the encoder, and why (recorded in the log).

    ``on``/``off`` are obeyed; ``auto`` compiles on the CPU in bf16 for ``tiles >= COMPILE_MIN_TILES`` when a
    C++ compiler is present (GPU runs stay eager under ``auto``: not measured there yet).
    """
    if mode not in COMPILE_MODES:
        raise MstarError(f"--compile {mode}: expected one of {', '.join(COMPILE_MODES)}")
    if mode != "auto":
        return mode == "on", f"--compile {mode}"
    if device.type != "cpu":
        return False, "auto: eager on a GPU"
    if precision != "bf16":
        return False, f"auto: eager in {precision}"
    if tiles < COMPILE_MIN_TILES:
        return False, f"auto: {tiles} tiles < {COMPILE_MIN_TILES}, compilation would not pay back"
    if not compiler_available():
        return False, f"auto: no C++ compiler ({'/'.join(COMPILERS)}) on the PATH"
    return True, f"auto: {tiles} tiles in bf16 on the CPU"


class EncoderForward:
    """``forward(x (B, 3, S, S)) -> (B, D) float32`` for one encoder, device and precision.

    Args:
        model: the encoder module (not modified; a bf16 copy is made on the CPU in bf16).
        device: where the model runs (the model must already be there).
        precision: ``fp32``, ``bf16`` or ``fp16``.
        compile_model: whether to ``torch.compile`` it; the batches are then padded to ``batch_size`` so that
            one compiled graph serves every batch (each slide's last batch is shorter).
        batch_size: the batch size the compiled graph is built for.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str,
                 compile_model: bool = False, batch_size: int = 64):
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.cast_weights = device.type == "cpu" and precision == "bf16"
        self.model = copy.deepcopy(model).to(torch.bfloat16) if self.cast_weights else model
        self.compiled = None
        if compile_model:
            # CPU GEMM templates; freezing (weights as constants, pre-packed) must be set while it compiles:
            # passed in ``options`` it is not applied (measured: 2.83 vs 3.04 tiles/s, ViT-L/16 bf16)
            self.compiled = torch.compile(self.model, dynamic=False, mode="max-autotune-no-cudagraphs")
        kind = ("bf16 weights" if self.cast_weights else "fp32" if precision == "fp32"
                else f"autocast {precision}")
        self.mode = ("compiled " if compile_model else "") + kind

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, "fp32" if self.cast_weights else self.precision):
            return self.model(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cast_weights:
            x = x.to(torch.bfloat16)
        if self.compiled is not None:
            n = x.shape[0]
            if n < self.batch_size:  # one graph for every batch: pad the short last batch of a slide
                x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.batch_size - n))  # (batch_size, 3, S, S)
            import torch._inductor.config as inductor_config  # 1 s to import: only when compiling

            try:
                with inductor_config.patch(freezing=True):
                    return self.compiled(x)[:n].float()  # (n, D)
            except Exception as err:  # noqa: BLE001 - any inductor failure: run eagerly instead
                log.warning("torch.compile of the encoder failed (%s); running it eagerly",
                            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
                self.compiled = None
                self.mode = self.mode.replace("compiled ", "")
                x = x[:n]
        return self._eager(x).float()


def encoder_forward(enc: Encoder, device: torch.device, precision: str, compile_mode: str = "off",
                    tiles: int = 0, batch_size: int = 64) -> EncoderForward:
    """The encoder's forward for this device, precision and compile choice (built once per encoder).

    The model is moved to ``device`` first. ``compile_mode`` is ``auto``, ``on`` or ``off`` (see
    :func:`should_compile`; ``tiles`` is the number of tiles the run will embed).
    """
    use, why = should_compile(compile_mode, device, str(precision), tiles)
    key = (str(device), str(precision), use, batch_size if use else 0)
    forwards = enc.forwards
    if key not in forwards:
        enc.model.to(device)
        forwards[key] = EncoderForward(enc.model, device, str(precision), use, batch_size)
        log.info("encoder forward: %s (compile: %s)", forwards[key].mode, why)
    return forwards[key]
