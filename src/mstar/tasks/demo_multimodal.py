"""The demo's multimodal survival step: SNN (RNA only), ABMIL (slides only), MCAT and additive late fusion.

In the synthetic cohort each modality sees the cancer type and TP53 but only its own half of the remaining
risk (``data/synthetic/truth.py``), so a model given both can rank survival better than either. The demo's
test split is small (about 12 cases), so its CIs are wide: the step shows the command path and the four test
C-indices side by side; the fusion gain is measured on larger cohorts (RESULTS.md) and asserted in
``tests/tasks/test_multimodal.py``.
"""

from __future__ import annotations

from pathlib import Path

from mstar.tasks.multimodal_config import MultimodalConfig

DEMO_MULTIMODAL = dict(epochs=20, lr=5e-4, batch_size=8, patience=20, bootstrap=1000)
DEMO_MODELS = {"snn": {}, "abmil": {"dim": 64, "attn_dim": 32}, "mcat": {},
               "late": {"fusion": "sum", "path_width": 64, "attn_dim": 32}}


def _fmt(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def step_multimodal(out: Path, cohort: Path | None = None, features: Path | None = None, seed: int = 0,
                    models: dict[str, dict] | None = None) -> dict:
    """Train the demo's multimodal survival models; return their test C-indices.

    Args:
        out: The demo folder (``cohort/``, ``work/features/<encoder>/`` inside; runs go to ``out/runs``).
        cohort: The synthetic cohort (default ``out/cohort``).
        features: Its features (default: the demo encoder's folder under ``out/work/features``).
        seed: Training seed.
        models: CLI model name -> model arguments (default :data:`DEMO_MODELS`).

    Returns:
        ``{"runs": {model: run dir}, "test": {model: {value, ci_low, ci_high, n}}, "summary": one line}``.
    """
    from mstar.tasks.multimodal import train_multimodal

    out = Path(out)
    cohort = Path(cohort) if cohort is not None else out / "cohort"
    if features is None:
        from mstar.features.demo_step import DEMO_ENCODER
        from mstar.features.encoders import folder_name

        features = out / "work" / "features" / folder_name(DEMO_ENCODER)
    runs, test = {}, {}
    for model, args in (models or DEMO_MODELS).items():
        cfg = MultimodalConfig(model=model, manifest=str(cohort / "manifests" / "multimodal_survival.csv"),
                               features="" if model == "snn" else str(features),
                               rna=str(cohort / "rna" / "cases"),
                               signatures=str(cohort / "signatures.csv"), out=str(out / "runs"), seed=seed,
                               model_args=args, **DEMO_MULTIMODAL)
        result = train_multimodal(cfg, progress=False)
        runs[model], test[model] = result["run"], result["metrics"]["test"]["c_index"]
    names = {"snn": "SNN (RNA)", "abmil": "ABMIL (slides)", "mcat": "MCAT (both)", "late": "late fusion (both)"}
    summary = ", ".join(f"{names.get(m, m)} {_fmt(e)}" for m, e in test.items())
    n = next(iter(test.values()))["n"]
    return {"runs": runs, "test": test, "summary": f"test C-index: {summary} (n={n})"}
