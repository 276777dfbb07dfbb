"""The demo's extraction step (wired into ``mstar.demo.STEPS`` after tiling)."""

from __future__ import annotations

DEMO_ENCODER = "timm:test_vit"


def step_extract(ctx) -> tuple[str, str]:
    """Extract ``timm:test_vit`` features (random init, 64-d) for the tiled demo cohort, in both layouts.

    Returns:
        (output folder, key numbers); the summary goes to ``ctx.results["extract"]``.
    """
    import time

    from mstar.features.encoders import folder_name
    from mstar.features.extract import extract_features

    start = time.perf_counter()
    # a light encoder: one reading worker beside a one-thread forward beats sharing every core (BENCHMARKS.md)
    workers = 1 if ctx.workers > 1 else 0
    summary = extract_features(ctx.work, DEMO_ENCODER, batch_size=32, workers=workers,
                               threads=1 if workers else None, device="cpu", save_pt=True)
    seconds = time.perf_counter() - start
    ctx.results["extract"] = summary
    n = int(summary["n_tiles"].sum())
    dim = summary["dim"].dropna()
    out = ctx.work / "features" / folder_name(DEMO_ENCODER)
    return str(out), (f"{n} tiles -> {int(dim.iloc[0]) if len(dim) else 0}-d features ({DEMO_ENCODER}), "
                      f"{n / max(seconds, 1e-9):.0f} tiles/s, {(summary['status'] == 'ok').sum()} slides, "
                      f"+ pt_files/ mirror")
