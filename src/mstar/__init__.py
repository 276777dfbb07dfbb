"""mstar: mSTAR (multimodal self-taught pretraining for whole-slide pathology), end to end.

The entry points a notebook needs, imported on first use (``import mstar`` stays instant)::

    import mstar

    slide = mstar.open_slide("slide.svs")                          # OpenSlide / tiffslide / Pillow reader
    mstar.tile(["slides/"], "work")                                # tiles/<slide>.h5, thumbnails, summary.csv
    mstar.extract("work", "timm:test_vit")                         # features/<encoder>/<slide>.h5
    feats, coords, attrs = mstar.load_features("work/features/timm-test_vit/s1.h5")
    cfg = mstar.TrainConfig(task="classify", manifest="diagnosis.csv", features="work/features/timm-test_vit")
    result = mstar.train(cfg)                                      # runs/classify/<name>/: metrics.json, ...
    model, meta = mstar.load_stage1("runs/pretrain/x/checkpoints/stage1.pt")
    mstar.embed(mstar.EmbedConfig(stage1="...stage1.pt", features="work/features/timm-test_vit"))

Every ``*Config`` is a dataclass with the fields of its command's ``config.yaml``; ``Config.load(path,
overrides)`` resolves a YAML file and ``--set``-style overrides with type conversion.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mstar")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

_EXPORTS = {
    "MstarError": ("mstar.errors", "MstarError"),
    "open_slide": ("mstar.slide.reader", "open_slide"),
    "tile": ("mstar.slide.batch", "tile_many"),
    "extract": ("mstar.features.extract", "extract_features"),
    "load_features": ("mstar.features.io", "load_features"),
    "TrainConfig": ("mstar.tasks.config", "TrainConfig"),
    "train": ("mstar.tasks.runner", "train_task"),
    "EvaluateConfig": ("mstar.tasks.evaluate", "EvaluateConfig"),
    "evaluate": ("mstar.tasks.evaluate", "evaluate_run"),
    "MultimodalConfig": ("mstar.tasks.multimodal_config", "MultimodalConfig"),
    "train_multimodal": ("mstar.tasks.multimodal", "train_multimodal"),
    "Stage1Config": ("mstar.pretrain.stage1_config", "Stage1Config"),
    "pretrain": ("mstar.pretrain.stage1_train", "pretrain"),
    "load_stage1": ("mstar.pretrain.stage1_model", "load_stage1"),
    "EmbedConfig": ("mstar.pretrain.stage1_embed", "EmbedConfig"),
    "embed": ("mstar.pretrain.stage1_embed", "embed_cohort"),
    "SelfTrainConfig": ("mstar.selftrain.config", "SelfTrainConfig"),
    "self_train": ("mstar.selftrain.train", "self_train"),
    "ZeroShotConfig": ("mstar.zeroshot.config", "ZeroShotConfig"),
    "zero_shot": ("mstar.zeroshot.zero_shot", "zero_shot"),
    "FewShotConfig": ("mstar.zeroshot.config", "FewShotConfig"),
    "few_shot": ("mstar.zeroshot.few_shot", "few_shot"),
    "RetrievalConfig": ("mstar.zeroshot.config", "RetrievalConfig"),
    "retrieve": ("mstar.zeroshot.retrieve", "retrieve"),
    "ReportConfig": ("mstar.tasks.report_config", "ReportConfig"),
    "train_report": ("mstar.tasks.report_task", "train_report"),
    "create_model": ("mstar.models.registry", "create_model"),
    "list_models": ("mstar.models.registry", "list_models"),
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mstar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
