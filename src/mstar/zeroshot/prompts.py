"""Zero-shot prompt files and class embeddings.

A prompt file uses the schema of MI-Zero / CONCH / upstream mSTAR::

    {"0": {"classnames": {"<label>": ["synonym", ...], ...},
           "templates": ["a photomicrograph showing CLASSNAME.", ...]}}

The file is read by :mod:`mstar.data.prompts` (shared with the report task's clinical check). Each class
key must be a label of the manifest (and every manifest label must have a key). The class
embedding is the mean of the L2-normalised embeddings of every synonym x template text, L2-normalised
again; the classes keep the file's order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# the JSON reading lives in mstar.data.prompts (the report task's clinical check reads the same files);
# its names stay importable from here
from mstar.data.prompts import (
    PACKAGED,
    PLACEHOLDER,
    PromptSet,
    read_classnames,
    read_prompts,
    resolve_prompts,
)
from mstar.errors import MstarError

__all__ = ["PACKAGED", "PLACEHOLDER", "PromptSet", "check_labels", "class_embeddings", "read_classnames",
           "read_prompts", "resolve_prompts"]


def check_labels(prompts: PromptSet, labels: Iterable[str], manifest: str | os.PathLike) -> None:
    """Fail when a prompt class is not a manifest label or a manifest label has no prompts."""
    labels = sorted(set(str(x) for x in labels))
    missing_in_manifest = [c for c in prompts.classes if c not in labels]
    if missing_in_manifest:
        raise MstarError(f"{prompts.source}: prompt class(es) {missing_in_manifest} are not labels of "
                         f"{manifest} (labels: {labels}); rename the classnames keys or drop those classes")
    missing_in_prompts = [x for x in labels if x not in prompts.classnames]
    if missing_in_prompts:
        raise MstarError(f"{manifest}: label(s) {missing_in_prompts} have no entry in {prompts.source} "
                         f"(prompt classes: {prompts.classes}); add their synonyms to 'classnames'")


@torch.no_grad()
def class_embeddings(encode: Callable[[list[str]], Tensor], prompts: PromptSet,
                     classes: Sequence[str] | None = None, batch_size: int = 64) -> Tensor:
    """``(C, E)`` class embeddings: mean of normalised synonym x template embeddings, re-normalised.

    Args:
        encode: Texts → ``(B, E)`` embeddings (e.g. ``Stage1Model.encode_text``).
        prompts: The prompt set.
        classes: Class order (default: the file's).
        batch_size: Texts per ``encode`` call.
    """
    rows = []
    for cls in classes or prompts.classes:
        texts = prompts.texts(cls)
        z = torch.cat([encode(texts[i:i + batch_size]).float()
                       for i in range(0, len(texts), batch_size)])  # (T, E)
        rows.append(F.normalize(F.normalize(z, dim=-1).mean(0), dim=-1))  # (E,)
    return torch.stack(rows)  # (C, E)
