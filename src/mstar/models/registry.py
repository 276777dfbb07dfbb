"""A timm-style registry: ``create_model(name, **kw)``, ``list_models()``, ``@register_model``.

Model files register their factories at import; :func:`create_model` imports :mod:`mstar.models` first, so
every architecture shipped with the package is available without further imports.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from mstar.errors import MstarError, first_line

if TYPE_CHECKING:
    from mstar.models.mil import MILModel

F = TypeVar("F", bound=Callable[..., nn.Module])

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str) -> Callable[[F], F]:
    """Decorator registering a factory ``f(**kw) -> nn.Module`` under ``name`` with a one-line description.

    Raises:
        ValueError: If ``name`` is taken (two files claiming one name is a programming error).
    """

    def decorate(factory: F) -> F:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"model name {name!r} is registered twice")
        _FACTORIES[name] = factory
        _DESCRIPTIONS[name] = description
        return factory

    return decorate


def _load_builtin() -> None:
    importlib.import_module("mstar.models")


def list_models() -> dict[str, str]:
    """Registered model names (sorted) mapped to their one-line descriptions."""
    _load_builtin()
    return {name: _DESCRIPTIONS[name] for name in sorted(_FACTORIES)}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with constructor arguments ``kwargs``.

    Example: ``create_model("transmil", in_dim=1024)``; ``create_model("abmil", in_dim=512, dim=256)``.

    Raises:
        MstarError: For an unknown name (the message lists the known ones).
    """
    _load_builtin()
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise MstarError(f"unknown model {name!r}; available: {known} (see `mstar models`)")
    try:
        return _FACTORIES[name](**kwargs)
    except TypeError as err:  # the factories pass **kwargs on, so their signatures cannot be checked first
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if bad is None:
            raise
        raise MstarError(f"config: model_args key {bad.group(1)!r} is not an argument of model {name!r}; "
                         "remove it from model_args (it may be left from another model)") from err
    except (ValueError, RuntimeError, ZeroDivisionError, AssertionError) as err:  # e.g. dim: -4, heads ∤ dim
        raise MstarError(f"config: model {name!r} cannot be built with {_shown(kwargs)} ({first_line(err)}); "
                         "check model_args") from err


def _shown(kwargs: dict[str, Any]) -> str:
    """The arguments a model was built with, short (omic sizes and other lists abbreviated)."""
    parts = [f"{k}={v!r}" if not isinstance(v, (list, tuple)) or len(v) <= 4 else f"{k}=[{len(v)} values]"
             for k, v in kwargs.items()]
    return ", ".join(parts) or "no arguments"


def create_mil_model(aggregator: str, task: str, n_classes: int, **kwargs: Any) -> MILModel:
    """An aggregator from the registry plus a head, as a :class:`~mstar.models.mil.MILModel`.

    Args:
        aggregator: Registered aggregator name (``abmil``, ``abmil_gated``, ``transmil``, ...).
        task: ``classification`` (logits) or ``survival`` (hazards, S, risk over ``n_classes`` time bins).
        n_classes: Classes or time bins (upstream survival uses 4).
        **kwargs: Passed to the aggregator.
    """
    from mstar.models.heads import make_head
    from mstar.models.mil import MILModel

    agg = create_model(aggregator, **kwargs)
    return MILModel(agg, make_head(task, agg.embed_dim, n_classes))
