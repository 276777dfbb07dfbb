"""Common set-up of the zero-shot, few-shot and retrieval commands: device, stage-1 model, prompts, cohort."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mstar.data.feature_dirs import check_stage1_features
from mstar.errors import MstarError
from mstar.features.distributed import resolve_device
from mstar.zeroshot.cohort import EvalCohort, load_eval_cohort, read_eval_table
from mstar.zeroshot.prompts import PromptSet, check_labels, class_embeddings, read_prompts

log = logging.getLogger(__name__)


def load_model(checkpoint, text_encoder: str | os.PathLike | None = None, device: str = "auto",
               text_cache: str | os.PathLike | None = None, features: str | os.PathLike | None = None):
    """A stage-1 model in eval mode on ``device`` and its checkpoint meta.

    Args:
        checkpoint: ``stage1.pt`` written by ``mstar pretrain``, or an already built ``Stage1Model``.
        text_encoder: The text model's folder when it moved since pretraining.
        device: ``auto``, ``cpu``, ``cuda``...
        text_cache: Folder of cached report states (the text read-out) of a frozen text encoder (read
            here; callers that encode reports write it back with ``model.save_text_cache``).
        features: The patch features the model will read: refused when another encoder made them than
            the one it was pretrained on.
    """
    from mstar.pretrain.stage1_model import Stage1Model, load_stage1

    if isinstance(checkpoint, Stage1Model):
        model, meta = checkpoint, {}
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise MstarError(f"{path}: stage-1 checkpoint not found "
                             "(runs/pretrain/<name>/checkpoints/stage1.pt)")
        model, meta = load_stage1(path, text_encoder)
        if features:
            check_stage1_features(features, meta, path)
    model.load_text_cache(text_cache)
    return model.to(resolve_device(device)).eval(), meta


@dataclass
class Prepared:
    model: object
    prompts: PromptSet
    cohort: EvalCohort
    class_emb: Tensor    # (C, E), normalised, on the model's device
    meta: dict = field(default_factory=dict)  # the checkpoint's meta (empty for a model passed in)


def prepare(checkpoint, prompts: str | os.PathLike, manifest: str | os.PathLike, label_column: str = "auto",
            text_encoder: str | os.PathLike | None = None, device: str = "auto",
            text_cache: str | os.PathLike | None = None, features: str | os.PathLike | None = None
            ) -> Prepared:
    """Check prompts against the manifest (before loading anything heavy), load the model, embed the
    prompts."""
    prompt_set = read_prompts(prompts)
    table = read_eval_table(manifest, label_column)
    check_labels(prompt_set, table["label"], manifest)
    cohort = load_eval_cohort(manifest, prompt_set.classes, label_column)
    model, meta = load_model(checkpoint, text_encoder, device, text_cache, features)
    if model.text is None:
        raise MstarError(f"{checkpoint}: this stage-1 model has no report encoder "
                         "(trained without --reports); zero-shot needs one")
    with torch.no_grad():
        emb = class_embeddings(model.encode_text, prompt_set)  # (C, E)
    return Prepared(model, prompt_set, cohort, emb, meta)


def check_unseen(meta: dict, slides_of: dict[str, list[str]], policy: str, checkpoint,
                 scored: str) -> int | None:
    """How many of the cases a command scores (``slides_of``: case -> its slide ids) the stage-1 model was
    trained on (``meta["train_cases"]``, recorded by `mstar pretrain`; a case counts when its id or one of
    its slide ids is there): with ``policy`` ``refuse`` any is an error (the model saw their slides,
    reports and RNA together, so retrieval and zero-shot on them are optimistic: on two real TCGA cohorts
    gene→report R@5 0.57 on seen cases against 0.15 on held-out ones); ``warn`` scores them with a warning.

    Returns:
        The count, or None when nothing could be checked: a model passed in as an object (``meta`` empty,
        not checked) or a checkpoint that does not record its cases (a warning).
    """
    from mstar.data.embeddings import cases_seen, warn_unrecorded

    if not meta:
        return None
    trained, complete = meta.get("train_cases"), bool(meta.get("train_cases_complete", True))
    warn_unrecorded(checkpoint, trained, complete, f"these {scored}")
    if trained is None:
        return None
    seen = cases_seen(trained, slides_of)
    if not seen:
        return 0
    line = (f"{checkpoint}: the stage-1 model was trained on {len(seen)} of the {len(slides_of)} {scored} "
            f"(e.g. {', '.join(seen[:3])}), so their scores are optimistic")
    if policy == "refuse":
        raise MstarError(f"{line}; evaluate on cases it never saw (the split it was not trained on), or pass "
                         "--set seen_cases=warn to score them anyway")
    log.warning("%s (seen_cases=warn)", line)
    return len(seen)
