"""The knowledge file: classes (names, synonyms, descriptions) and concepts (statements with their sources),
in YAML, written and updated by the user without retraining anything.

::

    templates: ["an H&E image of CLASSNAME."]        # optional: zero-shot prompts (default below)
    classes:
      LUAD:
        names: [lung adenocarcinoma]                 # the first name is the display name
        synonyms: [adenocarcinoma of the lung]       # optional
        description: Gland-forming malignant epithelial tumour of the lung.   # optional: a statement
        source: WHO Classification of Thoracic Tumours, 5th ed. (2021)       # optional
    concepts:
      - name: solid growth pattern
        statement: Sheets of tumour cells without glands, acini or papillae.
        source: Travis et al., J Thorac Oncol 2011
        classes: [LUAD]                              # optional: which classes it is about

`mstar predict --knowledge` ranks the statements (class descriptions and concepts) against each slide;
`mstar zero-shot --prompts` and the report task's clinical check (`classes`) read the same file's classes
(:func:`mstar.data.prompts.read_classnames` accepts it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mstar.errors import MstarError, did_you_mean

DEFAULT_TEMPLATES = ["CLASSNAME.", "an H&E image of CLASSNAME.", "a photomicrograph showing CLASSNAME."]
KNOWLEDGE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Statement:
    """One citable statement: what it is about, the text, its source and the classes it concerns."""

    concept: str
    statement: str
    source: str = ""
    classes: tuple[str, ...] = ()


@dataclass
class Knowledge:
    """A parsed knowledge file."""

    path: str
    classnames: dict[str, list[str]]
    statements: list[Statement]
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))


def _text(value: object, where: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise MstarError(f"{where} must be a non-empty string")
    return " ".join(value.split())


def _texts(value: object, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s.strip() for s in items):
        raise MstarError(f"{where} must be a list of non-empty strings")
    return [s.strip() for s in items]


def _no_unknown_keys(entry: dict, allowed: tuple[str, ...], where: str) -> None:
    """A misspelt key ('descripton') would silently drop its content: one line naming it."""
    for key in entry:
        if key not in allowed:
            raise MstarError(f"{where}: unknown key {key!r}; {did_you_mean(key, allowed)}known: "
                             f"{', '.join(allowed)}")


def read_knowledge(path: str | os.PathLike) -> Knowledge:
    """Read and check a knowledge file; every problem is one line naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: knowledge file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MstarError(f"{path}: not valid YAML{where}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), dict) or not doc["classes"]:
        raise MstarError(f"{path}: expected a mapping with 'classes' ({{CODE: {{names: [...]}}}}) and "
                         "optionally 'concepts' and 'templates'")
    _no_unknown_keys(doc, ("templates", "classes", "concepts"), str(path))
    classnames, statements = {}, []
    for code, entry in doc["classes"].items():
        where = f"{path}: classes[{code!r}]"
        if not isinstance(entry, dict):
            raise MstarError(f"{where} must be a mapping with 'names' (and optionally synonyms, description, "
                             "source)")
        _no_unknown_keys(entry, ("names", "synonyms", "description", "source"), where)
        names = _texts(entry.get("names"), f"{where}.names")
        if not names:
            raise MstarError(f"{where}.names must name the class at least once")
        classnames[str(code)] = names + _texts(entry.get("synonyms", []), f"{where}.synonyms")
        if entry.get("description") is not None:
            statements.append(Statement(names[0], _text(entry["description"], f"{where}.description"),
                                        _text(entry.get("source"), f"{where}.source", False), (str(code),)))
    concepts = doc.get("concepts") or []
    if not isinstance(concepts, list):
        raise MstarError(f"{path}: 'concepts' must be a list of {{name, statement, source}}")
    for i, entry in enumerate(concepts):
        where = f"{path}: concepts[{i}]"
        if not isinstance(entry, dict):
            raise MstarError(f"{where} must be a mapping with name, statement and source")
        _no_unknown_keys(entry, ("name", "statement", "source", "classes"), where)
        about = tuple(_texts(entry.get("classes", []), f"{where}.classes"))
        unknown = sorted(set(about) - set(classnames))
        if unknown:
            raise MstarError(f"{where}.classes names unknown classes {unknown} "
                             f"(known: {', '.join(classnames)})")
        statements.append(Statement(_text(entry.get("name"), f"{where}.name"),
                                    _text(entry.get("statement"), f"{where}.statement"),
                                    _text(entry.get("source"), f"{where}.source", False), about))
    templates = _texts(doc["templates"], f"{path}: templates") if doc.get("templates") else DEFAULT_TEMPLATES
    bad = [t for t in templates if "CLASSNAME" not in t]
    if bad:
        raise MstarError(f"{path}: template {bad[0]!r} lacks the CLASSNAME placeholder")
    return Knowledge(str(path), classnames, statements, list(templates))
