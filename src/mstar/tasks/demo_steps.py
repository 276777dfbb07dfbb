"""The demo's supervised steps: cancer-type classification and survival on the extracted features."""

from __future__ import annotations

from mstar.tasks.config import TrainConfig

DEMO_TRAINING = dict(model="abmil", epochs=40, lr=1e-3, batch_size=8, patience=15, bootstrap=1000,
                     model_args={"dim": 64, "attn_dim": 32})


def _features(ctx) -> str:
    from mstar.features.demo_step import DEMO_ENCODER
    from mstar.features.encoders import folder_name

    return str(ctx.work / "features" / folder_name(DEMO_ENCODER))


def _fmt(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def step_classify(ctx) -> tuple[str, str]:
    """ABMIL cancer-type classification (diagnosis.csv); test macro-AUC and balanced accuracy with CIs."""
    from mstar.tasks.runner import train_task

    cfg = TrainConfig(task="classify", manifest=str(ctx.cohort / "manifests" / "diagnosis.csv"),
                      features=_features(ctx), out=str(ctx.out / "runs"), seed=ctx.seed, **DEMO_TRAINING)
    result = train_task(cfg, progress=False)
    ctx.results["classify"] = result
    test = result["metrics"]["test"]
    return result["run"], (f"test macro-AUC {_fmt(test['auc_macro'])}, "
                           f"balanced acc. {_fmt(test['balanced_accuracy'])} (n={test['auc_macro']['n']})")


def step_survival(ctx) -> tuple[str, str]:
    """ABMIL discrete-time survival (survival.csv); test C-index with CI."""
    from mstar.tasks.runner import train_task

    cfg = TrainConfig(task="survival", manifest=str(ctx.cohort / "manifests" / "survival.csv"),
                      features=_features(ctx), out=str(ctx.out / "runs"), seed=ctx.seed, **DEMO_TRAINING)
    result = train_task(cfg, progress=False)
    ctx.results["survival"] = result
    test = result["metrics"]["test"]["c_index"]
    return result["run"], f"test C-index {_fmt(test)} (n={test['n']})"
