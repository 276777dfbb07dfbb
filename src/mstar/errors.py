"""The one exception type users see: a one-line message naming the file/field and what to do."""


class MstarError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback.

    The CLI catches it, prints ``error: <message>`` and exits with status 1. Raise it with a message that
    names the offending file or field and says how to fix it.
    """


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message (``limit`` characters at most) for a one-line report, or its
    kind when it has none (``KeyboardInterrupt()``: "interrupted")."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__
