"""The one exception type users see: a one-line message naming the file/field and what to do."""


class MstarError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback.

    The CLI catches it, prints ``error: <message>`` and exits with status 1. Raise it with a message that
    names the offending file or field and says how to fix it.
    """


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message for a one-line report (``limit`` characters at most, except an
    :class:`MstarError`'s, which is written to be read whole), or its kind when it has none
    (``KeyboardInterrupt()``: "interrupted")."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return lines[0] if isinstance(error, MstarError) else lines[0][:limit]


def some(items, shown: int = 5, sep: str = ", ") -> str:
    """The first ``shown`` of ``items`` for a message: ``A, B, C`` or ``A, B and 7 more``."""
    items = [str(i) for i in items]
    if len(items) <= shown:
        return sep.join(items)
    joiner = sep.rstrip() if sep.strip() not in ("", ",") else ""  # "a; b; and 3 more", "a, b and 3 more"
    return f"{sep.join(items[:shown])}{joiner} and {len(items) - shown} more"


def did_you_mean(key: str, choices) -> str:
    """``"did you mean 'description'? "`` when ``key`` is close to one of ``choices``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(key), [str(c) for c in choices], n=1)
    return f"did you mean {close[0]!r}? " if close else ""
