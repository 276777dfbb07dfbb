"""Whole-slide modes in `mstar demo`: the hierarchical scan (low-power look, top half embedded)."""

from __future__ import annotations

from mstar.demo.settings import DEMO_ENCODER, DEMO_TRAINING
from mstar.eval.results import format_ci

KEEP_FRACTION = 0.5


def demo_scan(ctx) -> tuple[str, str]:
    """A 2 µm/px pass of every slide, an ABMIL on it ranks regions, only the top half of the 0.5 µm/px tiles
    is embedded; the cancer-type model retrained on those bags against the full bags (paired CI)."""
    from mstar.eval.compare import compare_runs
    from mstar.features.context import low_power_pass
    from mstar.predict.scan import hierarchical_scan
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    manifest = str(ctx.cohort / "manifests" / "diagnosis.csv")
    low = low_power_pass(ctx.work, DEMO_ENCODER, 2.0, show_progress=False, precision="fp32")
    common = dict(task="classify", manifest=manifest, out=str(ctx.out / "runs"), seed=ctx.seed,
                  **DEMO_TRAINING)
    scan_run = train_task(TrainConfig(features=str(low), name="diagnosis-lowpower", **common),
                          progress=False)["run"]
    scanned = hierarchical_scan(ctx.work, DEMO_ENCODER, scan_run, keep_fraction=KEEP_FRACTION,
                                show_progress=False, precision="fp32")
    run = train_task(TrainConfig(features=scanned["features"], name="diagnosis-scan50", **common),
                     progress=False)["run"]
    cmp = compare_runs(run, ctx.results["classify"]["run"], "test")["metrics"]["auc_macro"]
    table = scanned["summary"]
    return run, (f"embedded {int(table['kept'].sum())} of {int(table['tiles'].sum())} tiles after a 2 µm/px "
                 f"scan; test macro-AUC {cmp['a']:.3f} vs {cmp['b']:.3f} with every tile, difference "
                 f"{format_ci(cmp['difference'])}")
