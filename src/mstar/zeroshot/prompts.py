"""Zero-shot prompt files and class embeddings.

A prompt file uses the schema of MI-Zero / CONCH / upstream mSTAR::

    {"0": {"classnames": {"<label>": ["synonym", ...], ...},
           "templates": ["a photomicrograph showing CLASSNAME.", ...]}}

Each class key must be a label of the manifest (and every manifest label must have a key). The class
embedding is the mean of the L2-normalised embeddings of every synonym x template text, L2-normalised
again; the classes keep the file's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mstar.errors import MstarError

PLACEHOLDER = "CLASSNAME"
PACKAGED = {"synthetic_cancer_type": "prompts_synthetic_cancer_type.json",
            "tcga_cohorts": "prompts_tcga_cohorts.json"}  # the 10 PORPOISE TCGA cohorts (BLCA ... UCEC)


@dataclass(frozen=True)
class PromptSet:
    """Synonyms per class (file order) and the templates they are put into."""

    source: str
    classnames: dict[str, list[str]]
    templates: list[str]

    @property
    def classes(self) -> list[str]:
        return list(self.classnames)

    def texts(self, cls: str) -> list[str]:
        """Every synonym x template text of one class (synonym-major)."""
        return [t.replace(PLACEHOLDER, s) for s in self.classnames[cls] for t in self.templates]


def resolve_prompts(path_or_name: str | os.PathLike) -> Path:
    """A prompt file path, or the file of a packaged prompt set (``synthetic_cancer_type``)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    if str(path_or_name) in PACKAGED:
        return Path(str(resources.files("mstar") / "resources" / PACKAGED[str(path_or_name)]))
    raise MstarError(f"{path}: prompt file not found (packaged prompt sets: {', '.join(PACKAGED)})")


def _strings(value: object, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise MstarError(f"{where} must be a non-empty list of non-empty strings")
    return [s.strip() for s in items]


def read_prompts(path_or_name: str | os.PathLike, key: str | None = None) -> PromptSet:
    """Read and validate a prompt file.

    Args:
        path_or_name: JSON file in the schema above, or a packaged prompt set name.
        key: Which top-level prompt set (default ``"0"``, or the only one).

    Raises:
        MstarError: Missing file, invalid JSON, wrong schema, or a template without ``CLASSNAME``.
    """
    path = resolve_prompts(path_or_name)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MstarError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(doc, dict) or not doc:
        raise MstarError(f'{path}: expected {{"0": {{"classnames": {{...}}, "templates": [...]}}}}')
    if key is None:
        key = "0" if "0" in doc else next(iter(doc)) if len(doc) == 1 else None
        if key is None:
            raise MstarError(f"{path}: several prompt sets ({', '.join(doc)}) and none is '0'; choose one")
    if key not in doc:
        raise MstarError(f"{path}: no prompt set {key!r} (has {', '.join(doc)})")
    entry = doc[key]
    if (not isinstance(entry, dict) or not isinstance(entry.get("classnames"), dict)
            or not entry["classnames"]):
        raise MstarError(f"{path}: prompt set {key!r} needs a non-empty 'classnames' object "
                         "{label: [synonyms]}")
    classnames = {str(c).strip(): _strings(v, f"{path}: classnames[{c!r}]")
                  for c, v in entry["classnames"].items()}
    if len(classnames) < 2:
        raise MstarError(f"{path}: prompt set {key!r} has {len(classnames)} class; "
                         "zero-shot needs at least 2")
    templates = _strings(entry.get("templates"), f"{path}: 'templates'")
    bad = [t for t in templates if PLACEHOLDER not in t]
    if bad:
        raise MstarError(f"{path}: template {bad[0]!r} lacks the {PLACEHOLDER} placeholder")
    return PromptSet(str(path), classnames, templates)


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
