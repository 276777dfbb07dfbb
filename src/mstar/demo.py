"""`mstar demo`: every stage built so far, on a synthetic cohort, on a laptop CPU.

The demo is a list of steps; each reads what earlier steps left in the shared context and returns the
key numbers shown in the final summary table. Later stages append their own step.
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


def step_synth(ctx: DemoContext) -> tuple[str, str]:
    from mstar.data.synthetic import SynthConfig, make_cohort

    s = make_cohort(ctx.cohort, SynthConfig(cases=ctx.cases, seed=ctx.seed), workers=ctx.workers)
    ctx.results["synth"] = s
    return str(ctx.cohort), (f"{s['cases']} cases, {s['slides']} slides, {s['reports']} reports, "
                             f"RNA {s['rna_cases']}x{s['genes']}, {s['censored']:.0%} censored")


def step_tile(ctx: DemoContext) -> tuple[str, str]:
    from mstar.slide.batch import tile_many

    summary = tile_many([ctx.cohort / "slides"], ctx.work, workers=ctx.workers)
    ctx.results["tile"] = summary
    ok = summary[summary["status"] == "ok"]
    return str(ctx.work / "tiles"), (f"{int(summary['n_tiles'].sum())} tiles of 256 px @ 0.5 µm/px, "
                                     f"{ok['n_tiles'].median():.0f} per slide (median), "
                                     f"{(summary['status'] != 'ok').sum()} slides without tiles")


def _lazy(module: str, name: str) -> Callable[[DemoContext], tuple[str, str]]:
    """A step function imported only when the step runs (keeps `mstar --help` light)."""

    def run(ctx: DemoContext) -> tuple[str, str]:
        import importlib

        return getattr(importlib.import_module(module), name)(ctx)

    return run


STEPS: list[DemoStep] = [
    DemoStep("synthetic cohort", step_synth),
    DemoStep("tiling", step_tile),
    DemoStep("feature extraction", _lazy("mstar.features.demo_step", "step_extract")),
    DemoStep("classification (cancer type)", _lazy("mstar.tasks.demo_steps", "step_classify")),
    DemoStep("survival", _lazy("mstar.tasks.demo_steps", "step_survival")),
    DemoStep("stage 1 pretraining (slides + reports + RNA)", _lazy("mstar.pretrain.demo_step", "demo_step")),
    DemoStep("stage 2 self-training (patch encoder)", _lazy("mstar.selftrain.demo_step", "demo_step")),
    DemoStep("zero-shot, few-shot, retrieval", _lazy("mstar.tasks.demo_steps", "step_zero_few_shot")),
    DemoStep("multimodal survival", _lazy("mstar.tasks.demo_steps", "step_multimodal")),
    DemoStep("report generation", _lazy("mstar.tasks.demo_steps", "step_report")),
]


def run_demo(ctx: DemoContext, on_step: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    """Run every demo step in order; return one result per step."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    for step in STEPS:
        start = time.perf_counter()
        output, numbers = step.run(ctx)
        result = StepResult(step.name, time.perf_counter() - start, output, numbers)
        results.append(result)
        if on_step:
            on_step(result)
    return results
