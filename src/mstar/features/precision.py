"""The autocast precision of extraction: ``--precision auto|fp32|bf16|fp16`` resolved for a device and an
encoder (``auto``: the encoder's on a GPU; on the CPU the choice of :mod:`mstar.utils.cpu_precision`)."""

from __future__ import annotations

import logging

import torch

from mstar.errors import MstarError
from mstar.features.encoders import Encoder
from mstar.features.preprocess import PRECISIONS

log = logging.getLogger("mstar.features.extract")  # the extraction's log, where users look for it


class ChosenPrecision(str):
    """A precision name (``fp32``/``bf16``/``fp16``) that also says how it was chosen (``note``), which the
    features file records as ``precision_choice``."""

    note: str = "requested"

    def __new__(cls, name: str, note: str = "requested") -> ChosenPrecision:
        obj = super().__new__(cls, name)
        obj.note = note
        return obj


def resolve_precision(precision: str | None, encoder: Encoder, device: torch.device) -> ChosenPrecision:
    """The autocast precision. ``auto`` (or None): on a GPU the encoder's preferred one (bf16 where the GPU
    has it, else fp16); on the CPU bf16 where the CPU runs it natively and faster than fp32
    (:mod:`mstar.utils.cpu_precision`: flags + a timed probe), else fp32.

    Raises:
        MstarError: unknown precision, fp16 on CPU, or bf16 on a GPU without bf16.
    """
    if precision in (None, "auto"):
        if device.type == "cuda":
            want = encoder.preprocess.precision
            if want == "bf16" and not torch.cuda.is_bf16_supported():
                return ChosenPrecision("fp16", "auto: the GPU has no bf16")
            return ChosenPrecision(want, "auto: the encoder's precision on GPU")
        from mstar.utils.cpu_precision import cpu_precision

        choice = cpu_precision()
        log.info("--precision auto on the CPU: %s (%s)", choice.precision, choice.reason)
        return ChosenPrecision(choice.precision, f"auto: {choice.reason}")
    if precision not in PRECISIONS:
        raise MstarError(f"--precision {precision}: expected auto or one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "fp16":
        raise MstarError("--precision fp16 is not supported on CPU; use fp32, bf16 or auto")
    if device.type == "cpu" and precision == "bf16":
        from mstar.utils.cpu_precision import native_bf16_flags

        if not native_bf16_flags():
            log.warning("bf16 on this CPU is emulated (no amx_bf16/avx512_bf16) and usually slower than fp32")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise MstarError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16")
    return ChosenPrecision(precision)
