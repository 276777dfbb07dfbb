"""How the encoder runs one batch of tiles in the chosen precision.

* GPU: autocast in the precision (weights stay fp32; tensor cores do the matrix work).
* CPU, bf16: a bf16 copy of the weights and bf16 inputs. Autocast would cast every fp32 weight to bf16 at
  every call (0.6 GB per batch for a ViT-L); casting once is 1.05-1.15x faster for ViT-L/16 on an
  AVX512-BF16 CPU (BENCHMARKS.md) at cosine >= 0.9998 to fp32.
* CPU, optionally: ``torch.compile`` (inductor, max-autotune, frozen weights) of that bf16 copy, another
  ~1.1x for ViT-L/16 at the price of ~35-45 s of compilation per process. ``compile="auto"`` does it only
  when it pays: on the CPU, in bf16, for at least :func:`compile_min_tiles` tiles (2,000 for a ViT-L/16,
  more for smaller encoders), and with a C++ compiler on the machine (inductor builds C++ kernels). A
  compile failure falls back to the eager forward with a warning.

A forward is built once per encoder and setting and kept on the :class:`Encoder` (``encoder.forwards``), so
repeated extractions in one process (``mstar predict``, benchmarks) compile once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil

import torch
import torch.nn.functional as F

from mstar.errors import MstarError, first_line
from mstar.features.encoders import Encoder

log = logging.getLogger("mstar.features.extract")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("auto", "on", "off")
# ~35-45 s of compilation pays back after ~1,500 ViT-L/16 tiles on a 2-core CPU (0.04 s saved per tile); the
# saving scales with the forward's cost, so smaller encoders need proportionally more tiles
COMPILE_MIN_TILES = 2000
COMPILE_REFERENCE_PARAMS = 304_000_000  # ViT-L/16
COMPILERS = ("g++", "c++", "clang++")


# max-autotune would print tables of kernel timings per matrix shape to stderr
QUIET_INDUCTOR = {"autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False}


@contextlib.contextmanager
def _quiet_cpp_extension():
    """Hide torch's "No CUDA runtime is found" warning while inductor builds CPU kernels."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def compiler_available() -> bool:
    """Whether a C++ compiler that inductor can use is on the PATH."""
    return any(shutil.which(name) for name in COMPILERS)


def check_compile_mode(mode: str) -> None:
    """A one-line error for a ``--compile`` value other than auto, on or off."""
    if mode not in COMPILE_MODES:
        raise MstarError(f"--compile {mode}: expected one of {', '.join(COMPILE_MODES)}")


def compile_min_tiles(params: int) -> int:
    """Tiles from which ``auto`` compiles an encoder of ``params`` parameters (2,000 for a ViT-L/16)."""
    return int(COMPILE_MIN_TILES * COMPILE_REFERENCE_PARAMS / max(params, 1))


def should_compile(mode: str, device: torch.device, precision: str, tiles: int,
                   params: int = COMPILE_REFERENCE_PARAMS) -> tuple[bool, str]:
    """Whether to ``torch.compile`` the encoder, and why (recorded in the log).

    ``on``/``off`` are obeyed; ``auto`` compiles on the CPU in bf16 when the run has at least
    :func:`compile_min_tiles` tiles for an encoder of ``params`` parameters and a C++ compiler is present
    (GPU runs stay eager under ``auto``: not measured there yet).
    """
    check_compile_mode(mode)
    if mode != "auto":
        return mode == "on", f"--compile {mode}"
    if device.type != "cpu":
        return False, "auto: eager on a GPU"
    if precision != "bf16":
        return False, f"auto: eager in {precision}"
    need = compile_min_tiles(params)
    if tiles < need:
        return False, f"auto: {tiles} tiles < {need} for this encoder, compilation would not pay back"
    if not compiler_available():
        return False, f"auto: no C++ compiler ({'/'.join(COMPILERS)}) on the PATH"
    return True, f"auto: {tiles} tiles in bf16 on the CPU"


def bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A bf16 copy of ``model`` (floating parameters and buffers), made without a second fp32 copy."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        if p.is_floating_point():
            memo[id(p)] = torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
    for b in model.buffers():
        if b.is_floating_point():
            memo[id(b)] = b.detach().to(torch.bfloat16)
    return copy.deepcopy(model, memo).eval()


class EncoderForward:
    """``forward(x (B, 3, S, S)) -> (B, D) float32`` for one encoder, device and precision.

    Args:
        model: the module that runs: the encoder's own (GPU, fp32) or its bf16 copy (CPU in bf16, see
            :func:`bf16_copy`), already on ``device``.
        device: where the model runs.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        compile_model: whether to ``torch.compile`` it; the batches are then padded to ``batch_size`` so that
            one compiled graph serves every batch (each slide's last batch is shorter).
        batch_size: the batch size the compiled graph is built for.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str,
                 compile_model: bool = False, batch_size: int = 64):
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.cast_weights = next((p.dtype == torch.bfloat16 for p in model.parameters()), False)
        self.model = model
        self.compiled = None
        kind = ("bf16 weights" if self.cast_weights else "fp32" if precision == "fp32"
                else f"autocast {precision}")
        self.mode = kind
        if compile_model:
            try:
                # CPU GEMM templates; freezing (weights as constants, pre-packed) is set around each call:
                # passed in ``options`` it was not applied (measured: 2.83 vs 3.04 tiles/s, ViT-L/16 bf16)
                self.compiled = torch.compile(self.model, dynamic=False, mode="max-autotune-no-cudagraphs")
                self.mode = f"compiled {kind}"
            except Exception as err:  # noqa: BLE001 - e.g. no Dynamo for this Python: eager
                self._give_up(err)

    def _give_up(self, err: BaseException) -> None:
        log.warning("torch.compile of the encoder failed (%s); running it eagerly", first_line(err))
        self.compiled = None
        self.mode = self.mode.replace("compiled ", "")

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, "fp32" if self.cast_weights else self.precision)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cast_weights:
            x = x.to(torch.bfloat16)
        if self.compiled is not None:
            n = x.shape[0]
            padded = x
            if n < self.batch_size:  # one graph for every batch: pad the short last batch of a slide
                padded = F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.batch_size - n))  # (batch_size, 3, S, S)
            import torch._inductor.config as inductor_config  # 1 s to import: only when compiling

            try:
                quiet = {k: v for k, v in QUIET_INDUCTOR.items() if hasattr(inductor_config, k)}
                with inductor_config.patch(freezing=True, **quiet), _quiet_cpp_extension(), self._autocast():
                    return self.compiled(padded)[:n].float()  # (n, D)
            except Exception as err:  # noqa: BLE001 - any inductor failure: run eagerly instead
                self._give_up(err)
        with self._autocast():
            return self.model(x).float()  # (B, D)


def encoder_forward(enc: Encoder, device: torch.device, precision: str, compile_mode: str = "off",
                    tiles: int = 0, batch_size: int = 64) -> EncoderForward:
    """The encoder's forward for this device, precision and compile choice.

    Built once per encoder module, device, precision, compile choice (batch size) and torch thread count
    (a compiled graph keeps the thread count it was built with) and kept in ``enc.forwards``; on the CPU in
    bf16 every forward of the encoder shares one bf16 copy of the weights. ``compile_mode`` is ``auto``,
    ``on`` or ``off`` (see :func:`should_compile`; ``tiles`` is the number of tiles the run will embed).
    """
    precision = str(precision)
    params = sum(p.numel() for p in enc.model.parameters())
    use, why = should_compile(compile_mode, device, precision, tiles, params)
    forwards = enc.forwards
    key = (id(enc.model), str(device), precision, use, batch_size if use else 0,
           torch.get_num_threads() if use else 0)
    if key not in forwards:
        model = enc.model.to(device)
        if device.type == "cpu" and precision == "bf16":
            copy_key = ("bf16 copy", id(enc.model))
            if copy_key not in forwards:
                forwards[copy_key] = bf16_copy(model)
            model = forwards[copy_key]
        forwards[key] = EncoderForward(model, device, precision, use, batch_size)
        log.info("encoder forward: %s (compile: %s)", forwards[key].mode, why)
    enc.model.to(device)  # the shared module may have been moved by another extraction since
    return forwards[key]
