"""The settings of every command: defaults < YAML file < ``--set key=value``, converted to each field's type.

Every command's settings are a dataclass deriving from :class:`RunConfig`. Resolution is the same for all
of them (:meth:`RunConfig.load`): the class defaults, then a YAML file (``--config``; a run folder's own
``config.yaml`` re-runs it), then command-line overrides. Each value is converted to its field's annotated
type (``--set lr=1e-4`` arrives from YAML as the *string* ``'1e-4'`` and becomes the float 1e-4) and
checked against the class's declared rules; a wrong type, an unknown key or a value out of range is one
:class:`~mstar.errors.MstarError` line naming the key.

A subclass declares, besides its fields:

- ``KIND``: the group of its run folders (``<out>/<KIND>/<name>``);
- ``REQUIRED``, ``CHOICES``, ``AT_LEAST``, ``POSITIVE``, ``FRACTIONS``, ``NON_NEGATIVE``: the declarative
  checks;
- ``INPUTS``: fields naming input files or folders; the run's fingerprint holds their content digests
  instead of the path strings (moving data keeps a run, changing it does not);
- ``RUNTIME``: fields that change how a run executes but not what it computes (devices, workers);
- ``PATHS``: other fields naming files or folders (caches, a moved text model): like ``INPUTS``, resolved
  against the folder a run was started in when its ``config.yaml`` is re-run from elsewhere.

Dataclasses with a small conversion step were chosen over pydantic: the configs are plain dataclasses users
can build in Python (``TrainConfig(manifest=..., epochs=5)``), YAML is the only serialisation, and the
conversion rules fit in this file (see ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml

from mstar.errors import MstarError, did_you_mean

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class _BadValue(ValueError):
    """A value that cannot be converted to a field's type (the message says what was expected)."""


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
             list: "a list"}
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in typing.get_args(hint) else "")
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def convert(value: Any, hint: Any) -> Any:
    """``value`` converted to the annotated type ``hint`` (YAML strings such as ``'1e-4'`` included).

    Raises:
        _BadValue: The value has no sensible reading as ``hint``.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except _BadValue:
                continue
        raise _BadValue(_describe(hint))
    if value is None:
        raise _BadValue(_describe(hint))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _BadValue("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise _BadValue("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _BadValue("an integer") from None
            if number.is_integer():
                return int(number)
        raise _BadValue("an integer")
    if hint is float:
        if isinstance(value, bool):
            raise _BadValue("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _BadValue("a number") from None
        raise _BadValue("a number")
    if hint is str:
        if isinstance(value, (str, int, float, os.PathLike)) and not isinstance(value, bool):
            return str(value)
        raise _BadValue("a string")
    if hint is dict or origin is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError:
                raise _BadValue("a mapping such as {dim: 64}") from None
        if isinstance(value, dict):
            return dict(value)
        raise _BadValue("a mapping such as {dim: 64}")
    if hint is list or origin is list:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _BadValue("a list such as [a, b] or a,b")
        if args:  # list[int], list[str]: every element converted
            try:
                return [convert(v, args[0]) for v in value]
            except _BadValue:
                plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
                raise _BadValue(f"a list of {plural.get(args[0], args[0])}") from None
        return list(value)
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (numbers, booleans, lists, mappings); unparsable YAML is
    kept as the raw string (the field's type then decides)."""
    if "=" not in text:
        raise MstarError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not raw.strip():
        return key.strip(), None
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        return key.strip(), raw


class RunConfig:
    """Base of every command's settings (subclasses are dataclasses; see the module docstring)."""

    KIND: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    CHOICES: ClassVar[dict[str, tuple]] = {}
    AT_LEAST: ClassVar[dict[str, float]] = {}
    POSITIVE: ClassVar[tuple[str, ...]] = ()
    FRACTIONS: ClassVar[tuple[str, ...]] = ()          # strictly between 0 and 1
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ("weight_decay",)  # checked wherever a config has them
    INPUTS: ClassVar[tuple[str, ...]] = ()
    PATHS: ClassVar[tuple[str, ...]] = ()  # other path settings (a cache, a moved text model)
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name")
    ALIASES: ClassVar[dict[str, str]] = {}             # deprecated key -> current key
    BESIDE: ClassVar[str] = "--name to start a new run beside it"  # how a user starts another run folder

    # ---- resolution ----
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def _key(cls, key: str, where: str) -> str:
        if key in cls.ALIASES:
            new = cls.ALIASES[key]
            import logging

            logging.getLogger("mstar").warning("%s: setting '%s' is deprecated; use '%s'", where, key, new)
            return new
        if key not in cls.field_names():
            hint = did_you_mean(key, cls.field_names()).strip()
            raise MstarError(f"{where}: unknown setting '{key}'{'; ' + hint if hint else ''} "
                             f"(valid: {', '.join(cls.field_names())})")
        return key

    @classmethod
    def load(cls, yaml_path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None):
        """Resolve defaults, then the YAML file, then ``overrides`` (``--set key=null`` sets None), convert
        every value to its field's type and validate.

        Raises:
            MstarError: A missing or unreadable file, an unknown key, a wrong type or a value out of range.
        """
        values: dict[str, Any] = {}
        if yaml_path:
            path = Path(yaml_path)
            if not path.is_file():
                raise MstarError(f"{path}: config file not found")
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise MstarError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
            if not isinstance(loaded, dict):
                raise MstarError(f"{path}: expected a mapping of settings at the top level")
            values.update({cls._key(str(k), str(path)): v for k, v in loaded.items()})
            values = cls._from_run_folder(path, values)
        for key, value in (overrides or {}).items():
            values[cls._key(key, "--set")] = value
        return cls(**values).validate()

    @classmethod
    def _from_run_folder(cls, path: Path, values: dict[str, Any]) -> dict[str, Any]:
        """A run folder's ``config.yaml`` holds paths as they were typed, relative to the folder the command
        ran in (``run.json``'s ``cwd``); each relative path that exists from there is made absolute, so
        ``--config RUN/config.yaml`` re-runs the same run from any folder (the ``INPUTS``, ``PATHS`` and
        ``out`` fields)."""
        from mstar.run.folder import record_field

        cwd = record_field(path.parent, "cwd")
        if not cwd or not Path(cwd).is_dir() or Path(cwd) == Path.cwd():
            return values

        def moved(value: Any) -> Any:
            if isinstance(value, list):
                return [moved(v) for v in value]
            if isinstance(value, str) and value and not Path(value).is_absolute():
                there = Path(cwd) / value
                if there.exists() or any(c in value for c in "*?["):  # a glob of slides is taken as typed
                    return str(there)
            return value

        values = {k: moved(v) if k in (*cls.INPUTS, *cls.PATHS, "out") else v for k, v in values.items()}
        if "out" in values and values["out"] is None:  # a default runs folder (embed): the one it ran in
            values["out"] = str(path.parent.parent.parent)
        return values

    def convert_fields(self):
        """Convert every field to its annotated type in place (one-line error naming a bad key)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                setattr(self, f.name, convert(value, hints.get(f.name, Any)))
            except _BadValue as exc:
                raise MstarError(f"config: '{f.name}' must be {exc}, got {value!r}") from None
        return self

    def validate(self):
        """Convert types, then apply the declared checks and :meth:`check`; return ``self``."""
        self.convert_fields()
        for key in self.required():
            if getattr(self, key) in (None, "", [], {}):
                raise MstarError(f"config: '{key}' is required (--{key.replace('_', '-')})")
        for key, allowed in self.CHOICES.items():
            if getattr(self, key) not in allowed:
                raise MstarError(f"config: '{key}' must be one of {', '.join(map(str, allowed))}; "
                                 f"got {getattr(self, key)!r}")
        for key, low in self.AT_LEAST.items():
            value = getattr(self, key)
            if value is not None and value < low:
                raise MstarError(f"config: '{key}' must be at least {low:g}, got {value!r}")
        for key in (k for k in self.NON_NEGATIVE if getattr(self, k, None) is not None):
            if not getattr(self, key) >= 0:
                raise MstarError(f"config: '{key}' must be at least 0, got {getattr(self, key)!r}")
        for key in self.POSITIVE:
            if not getattr(self, key) > 0:
                raise MstarError(f"config: '{key}' must be positive, got {getattr(self, key)!r}")
        for key in self.FRACTIONS:
            if not 0 < getattr(self, key) < 1:
                raise MstarError(f"config: '{key}' must be between 0 and 1, got {getattr(self, key)!r}")
        self.check()
        return self

    def required(self) -> tuple[str, ...]:
        """Settings that must be given (``REQUIRED``; a subclass may decide from other settings)."""
        return self.REQUIRED

    def check(self) -> None:
        """Rules beyond the declarative ones (a subclass raises :class:`MstarError` naming the key)."""

    # ---- the run folder ----
    def group(self) -> str:
        """The folder grouping runs of this kind (``<out>/<group>/<name>``)."""
        return self.KIND

    def default_name(self) -> str:
        """Run name when ``name`` is not set."""
        return "run"

    def run_dir(self) -> Path:
        """``<out>/<group>/<name>``."""
        return (Path(getattr(self, "out", "runs")) / self.group()
                / (getattr(self, "name", None) or self.default_name()))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved settings as YAML (``--config`` on this text re-runs the command)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def identity(self) -> dict[str, Any]:
        """The settings that decide what the run computes: every field except ``RUNTIME`` ones and the input
        paths (whose contents are fingerprinted instead)."""
        skip = set(self.RUNTIME) | set(self.INPUTS)
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def input_paths(self) -> dict[str, Any]:
        """Input name -> a path, a list of paths, or None; the fingerprint digests their contents.

        By default the ``INPUTS`` fields as given; a subclass narrows them to the files it reads (e.g. only
        the feature files of the manifest's slides)."""
        return {k: getattr(self, k) or None for k in self.INPUTS}


def stem_of(path: str | os.PathLike) -> str:
    """A file's name without its data suffixes (``tcga_blca.csv.gz`` -> ``tcga_blca``)."""
    stem = Path(path).name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".json", ".yaml"):
        stem = stem.removesuffix(suffix)
    return stem
