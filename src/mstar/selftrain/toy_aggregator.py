"""A small stage-1-format aggregator trained in seconds: for the demo (without a stage-1 run) and tests.

It is NOT stage 1: it is ``mstar train classify`` with a TransMIL whose input projection is linear (the
stage-1 ``proj``), trained on the manifest's cases to predict their label (cancer type) with cross-entropy on
the CLS token; its aggregator is then saved in the stage-1 layout ``{'model_state_dict': {proj.*,
vision_encoder.*}}``. Like stage 1 (whose losses also act on the CLS token only) the per-patch output
tokens then mix the patch's own (residual) content with slide context learned through attention.
"""

from __future__ import annotations

import os
from pathlib import Path

from mstar.models.upstream import to_stage1_state_dict
from mstar.run.checkpoint import save_checkpoint


def train_toy_stage1(manifest: str | os.PathLike, features: str | os.PathLike, out: str | os.PathLike, *,
                     dim: int = 32, epochs: int = 30, lr: float = 2e-3, max_patches: int = 256,
                     seed: int = 0) -> dict:
    """Train (through the supervised runner) and save a toy stage-1 aggregator.

    Args:
        manifest: A classification manifest with a train/val/test split (the label is what is learned; the
            epoch is chosen on ``val``; ``test`` cases are only predicted).
        features: Their patch features (any layout ``mstar train`` reads).
        out: The checkpoint to write; the supervised run goes to
            ``<out folder>/toy_runs/classify/<out stem>``.
        dim: Token width (TransMIL with ``dim // 8``-wide heads).
        epochs, lr, max_patches, seed: Training settings (Adam, one bag per step).

    Returns:
        ``{"checkpoint", "run", "val_auc", "classes"}``.
    """
    from mstar.tasks import run_files
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task

    out = Path(out)
    cfg = TrainConfig(task="classify", manifest=str(manifest), features=str(features), model="transmil",
                      model_args={"dim": dim, "input_proj": "linear"}, epochs=epochs, lr=lr, weight_decay=0.0,
                      batch_size=1, max_patches=max_patches, patience=epochs, seed=seed, bootstrap=100,
                      skip_missing=True, out=str(out.parent / "toy_runs"), name=out.stem)
    result = train_task(cfg, progress=False)
    unit = sorted((Path(result["run"]) / "units").iterdir())[0]
    model, info = run_files.load_model(unit / "model.pt")
    save_checkpoint(out, {"model_state_dict": {k: v.detach().clone()
                                               for k, v in to_stage1_state_dict(model.aggregator).items()}})
    val = result["metrics"].get("val", {}).get("auc_macro", {}).get("value", float("nan"))
    return {"checkpoint": str(out), "run": result["run"], "val_auc": val, "classes": info["classes"]}
