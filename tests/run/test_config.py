"""Settings: defaults < YAML < --set, every value converted to its field's type, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import yaml

from mstar.errors import MstarError
from mstar.run.config import RunConfig, convert, parse_override


@dataclass
class Toy(RunConfig):
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 5
    max_patches: int | None = 16
    ordinal: bool | None = None
    model_args: dict = field(default_factory=dict)
    shots: list[int] = field(default_factory=lambda: [1, 2])
    devices: Any = 1
    mode: str = "a"
    path: str = ""
    out: str = "runs"
    name: str | None = None

    KIND: ClassVar[str] = "toy"
    CHOICES: ClassVar[dict[str, tuple]] = {"mode": ("a", "b")}
    AT_LEAST: ClassVar[dict[str, float]] = {"epochs": 1}
    POSITIVE: ClassVar[tuple[str, ...]] = ("lr",)
    INPUTS: ClassVar[tuple[str, ...]] = ("path",)
    ALIASES: ClassVar[dict[str, str]] = {"learning_rate": "lr"}


def _load(*sets: str, path=None) -> Toy:
    return Toy.load(path, dict(parse_override(s) for s in sets))


def test_yaml_strings_become_their_field_types():
    cfg = _load("lr=1e-4", "epochs=3.0", "max_patches=null", "ordinal=yes", "model_args={dim: 8}",
                "shots=1,4,16", "mode=b", "name=2024")
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)  # YAML reads 1e-4 as the string '1e-4'
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.max_patches is None and cfg.ordinal is True
    assert cfg.model_args == {"dim": 8} and cfg.shots == [1, 4, 16] and cfg.name == "2024"


@pytest.mark.parametrize("text, match", [
    ("lr=abc", r"^config: 'lr' must be a number, got 'abc'$"),
    ("epochs=2.5", r"^config: 'epochs' must be an integer, got 2\.5$"),
    ("epochs=0", r"^config: 'epochs' must be at least 1, got 0$"),
    ("lr=-1", r"^config: 'lr' must be positive, got -1\.0$"),
    ("mode=c", r"^config: 'mode' must be one of a, b; got 'c'$"),
    ("weight_decay=-1", r"^config: 'weight_decay' must be at least 0, got -1\.0$"),  # every config's
    ("model_args=[1,2", r"^config: 'model_args' must be a mapping such as \{dim: 64\}, got '\[1,2'$"),
    ("ordinal=maybe", r"^config: 'ordinal' must be true or false or null, got 'maybe'$"),
    ("shots=1,x", r"^config: 'shots' must be a list of integers, got '1,x'$"),
    ("no_such_key=1", r"^--set: unknown setting 'no_such_key' \(valid: lr, weight_decay, epochs, .*\)$"),
    ("epoch=3", r"^--set: unknown setting 'epoch'; did you mean 'epochs'\? \(valid: .*\)$"),
])
def test_bad_values_and_keys_are_one_line_errors_naming_the_key(text, match):
    with pytest.raises(MstarError, match=match) as info:
        _load(text)
    assert "\n" not in str(info.value)


def test_yaml_file_then_set_and_deprecated_aliases(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "learning_rate": 5e-4}))
    cfg = _load("epochs=9", path=path)
    assert cfg.epochs == 9 and cfg.lr == 5e-4  # --set wins over the file; the old key still works
    assert "'learning_rate' is deprecated; use 'lr'" in caplog.text
    path.write_text("- a\n- b\n")
    with pytest.raises(MstarError, match="expected a mapping"):
        _load(path=path)
    with pytest.raises(MstarError, match="config file not found"):
        _load(path=tmp_path / "nope.yaml")


def test_to_yaml_round_trips_and_identity_leaves_out_runtime_and_input_paths(tmp_path):
    cfg = _load("lr=3e-4", "path=/data/x.csv", "name=n")
    again = Toy.load(None, yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert cfg.run_dir() == __import__("pathlib").Path("runs/toy/n")
    ident = cfg.identity()
    assert "out" not in ident and "name" not in ident and "path" not in ident and ident["lr"] == 3e-4


def test_convert_rejects_bools_as_numbers_and_accepts_integral_floats():
    assert convert(4.0, int) == 4
    with pytest.raises(ValueError):
        convert(True, int)
    with pytest.raises(ValueError):
        convert("x", float)
