"""`mstar demo`: every stage, on a synthetic cohort, on a laptop CPU.

The demo is a list of steps (:data:`STEPS`); each builds its stage's config from the settings in
:mod:`mstar.demo.settings`, reads what earlier steps left in the shared context and returns the key numbers
shown in the final summary table (:mod:`mstar.demo.steps`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoContext:
    """What the steps share: settings, output folders and results of earlier steps."""

    out: Path
    cases: int = 60
    seed: int = 0
    workers: int = 2
    results: dict = field(default_factory=dict)

    @property
    def cohort(self) -> Path:
        return self.out / "cohort"

    @property
    def work(self) -> Path:
        return self.out / "work"


@dataclass
class StepResult:
    name: str
    seconds: float
    output: str
    numbers: str


@dataclass
class DemoStep:
    name: str
    run: Callable[[DemoContext], tuple[str, str]]  # returns (output location, key numbers)


def _lazy(name: str, module: str = "steps") -> Callable[[DemoContext], tuple[str, str]]:
    """A step function of :mod:`mstar.demo.steps` (or ``stage1_steps``), imported only when the step runs
    (keeps `mstar --help` light)."""

    def run(ctx: DemoContext) -> tuple[str, str]:
        import importlib

        return getattr(importlib.import_module(f"mstar.demo.{module}"), name)(ctx)

    return run


STEPS: list[DemoStep] = [
    DemoStep("synthetic cohort", _lazy("step_synth")),
    DemoStep("tiling", _lazy("step_tile")),
    DemoStep("feature extraction", _lazy("step_extract")),
    DemoStep("classification (cancer type)", _lazy("step_classify")),
    DemoStep("survival", _lazy("step_survival")),
    DemoStep("hierarchical scan (whole-slide mode)", _lazy("demo_scan", "wsi_steps")),
    DemoStep("stage 1 pretraining (slides + reports + RNA)", _lazy("demo_pretrain", "stage1_steps")),
    DemoStep("stage 2 self-training (patch encoder)", _lazy("demo_selftrain", "stage1_steps")),
    DemoStep("zero-shot, few-shot, retrieval", _lazy("demo_zero_few_shot", "stage1_steps")),
    DemoStep("multimodal survival", _lazy("demo_multimodal")),
    DemoStep("report generation", _lazy("step_report")),
]


def run_demo(ctx: DemoContext, on_step: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    """Run every demo step in order; return one result per step. Training and extraction run in fp32 on
    every CPU (:func:`~mstar.utils.cpu_precision.pinned_cpu_precision`), so the figures are the same
    everywhere."""
    from mstar.utils.cpu_precision import pinned_cpu_precision

    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    with pinned_cpu_precision("fp32"):
        for step in STEPS:
            start = time.perf_counter()
            output, numbers = step.run(ctx)
            result = StepResult(step.name, time.perf_counter() - start, output, numbers)
            results.append(result)
            if on_step:
                on_step(result)
    return results
