"""Prompt / class-knowledge files: the JSON schema of MI-Zero / CONCH / upstream mSTAR, read without torch.

::

    {"0": {"classnames": {"<class code>": ["synonym", ...], ...},
           "templates": ["a photomicrograph showing CLASSNAME.", ...]}}

Zero-shot (:mod:`mstar.zeroshot.prompts`) reads the whole prompt set (:func:`read_prompts`: at least two
classes, every template with ``CLASSNAME``); the report task's clinical check (:mod:`mstar.eval.clinical`)
reads only the class names and synonyms (:func:`read_classnames`: templates optional). Packaged sets are
named instead of given as a path (:data:`PACKAGED`). A knowledge YAML (:mod:`mstar.data.knowledge`) is read
as one prompt set: its classes' names and synonyms, and its templates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mstar.data.tables import read_json_file
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


def _entry(path_or_name: str | os.PathLike, key: str | None) -> tuple[Path, str, dict]:
    """``(path, key, entry)``: the chosen prompt set of the file, its ``classnames`` checked."""
    path = resolve_prompts(path_or_name)
    if path.suffix.lower() in (".yaml", ".yml"):  # a knowledge file: its classes are the prompt set
        from mstar.data.knowledge import read_knowledge

        knowledge = read_knowledge(path)
        return path, "0", {"classnames": knowledge.classnames, "templates": knowledge.templates}
    doc = read_json_file(path, "prompt file", '{"0": {"classnames": {...}, "templates": [...]}}')
    if not isinstance(doc, dict) or not doc:
        raise MstarError(f'{path}: expected {{"0": {{"classnames": {{...}}, "templates": [...]}}}}')
    if (key is None and all(isinstance(v, (list, str)) for v in doc.values())
            and not {"templates", "classnames"} & set(doc)):
        return path, "0", {"classnames": doc}  # a plain {class: [names]} mapping: one set, no templates
    if key is None:
        key = "0" if "0" in doc else next(iter(doc)) if len(doc) == 1 else None
        if key is None:
            raise MstarError(f"{path}: several prompt sets ({', '.join(doc)}) and none is '0'; write one set "
                             '{"0": {"classnames": {CLASS: [names]}, "templates": [...]}} or a plain '
                             "{CLASS: [names]} mapping")
    if key not in doc:
        raise MstarError(f"{path}: no prompt set {key!r} (has {', '.join(doc)})")
    entry = doc[key]
    if (not isinstance(entry, dict) or not isinstance(entry.get("classnames"), dict)
            or not entry["classnames"]):
        raise MstarError(f"{path}: prompt set {key!r} needs a non-empty 'classnames' object "
                         "{label: [synonyms]}")
    return path, key, entry


def _classnames(path: Path, entry: dict) -> dict[str, list[str]]:
    return {str(c).strip(): _strings(v, f"{path}: classnames[{c!r}]") for c, v in entry["classnames"].items()}


def read_classnames(path_or_name: str | os.PathLike, key: str | None = None) -> dict[str, list[str]]:
    """The classes of a prompt / knowledge file and their names: ``{class code: [name, synonym, ...]}``.

    Only ``classnames`` is read (``templates`` may be absent); one class is enough.

    Args:
        path_or_name: JSON file in the schema above, or a packaged prompt set name.
        key: Which top-level prompt set (default ``"0"``, or the only one).

    Raises:
        MstarError: Missing file, invalid JSON or a wrong schema, naming the file.
    """
    path, _, entry = _entry(path_or_name, key)
    return _classnames(path, entry)


def read_prompts(path_or_name: str | os.PathLike, key: str | None = None) -> PromptSet:
    """Read and validate a prompt file (for zero-shot: at least 2 classes, templates with ``CLASSNAME``).

    Args:
        path_or_name: JSON file in the schema above, or a packaged prompt set name.
        key: Which top-level prompt set (default ``"0"``, or the only one).

    Raises:
        MstarError: Missing file, invalid JSON, wrong schema, or a template without ``CLASSNAME``.
    """
    path, key, entry = _entry(path_or_name, key)
    classnames = _classnames(path, entry)
    if len(classnames) < 2:
        raise MstarError(f"{path}: prompt set {key!r} has {len(classnames)} class; "
                         "zero-shot needs at least 2")
    if "templates" not in entry:
        raise MstarError(f"{path}: prompt set {key!r} has class names but no templates, and zero-shot needs "
                         'them: write {"0": {"classnames": {CLASS: [names]}, "templates": ["an H&E image of '
                         f'{PLACEHOLDER}.", ...]}}}} (or a knowledge YAML with templates)')
    templates = _strings(entry.get("templates"), f"{path}: 'templates'")
    bad = [t for t in templates if PLACEHOLDER not in t]
    if bad:
        raise MstarError(f"{path}: template {bad[0]!r} lacks the {PLACEHOLDER} placeholder")
    return PromptSet(str(path), classnames, templates)
