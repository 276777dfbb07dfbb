"""The one exception type users see: a one-line message naming the file/field and what to do."""


class MstarError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback.

    The CLI catches it, prints ``error: <message>`` and exits with status 1. Raise it with a message that
    names the offending file or field and says how to fix it.
    """
