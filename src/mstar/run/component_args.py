"""Check keyword arguments against a constructor before calling it, so a stale ``*_args`` entry is a one-line
error naming the key instead of a ``TypeError`` traceback from deep inside a model."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mstar.errors import MstarError


def accepted_kwargs(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[str] | None:
    """The keyword names ``fn`` accepts (None when it takes ``**kwargs``, so anything goes)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                  inspect.Parameter.KEYWORD_ONLY) and p.name not in skip]


def check_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any], field: str, component: str,
                 skip: tuple[str, ...] = ()) -> None:
    """Raise :class:`MstarError` when ``kwargs`` holds a key that ``fn`` does not take.

    Args:
        fn: The constructor or factory the arguments go to.
        kwargs: The user's arguments (e.g. ``gene_args``).
        field: The config field they came from, named in the message.
        component: What they configure (``gene_encoder 'snn'``), named in the message.
        skip: Arguments the caller sets itself (not the user's to give).
    """
    known = accepted_kwargs(fn, skip)
    if known is None:
        return
    bad = [k for k in kwargs if k not in known or k in skip]
    if bad:
        raise MstarError(f"config: {field} key(s) {', '.join(map(repr, bad))} are not arguments of "
                         f"{component} (it takes: {', '.join(known) or 'none'}); remove them from {field} "
                         "(they may be left from another component)")
