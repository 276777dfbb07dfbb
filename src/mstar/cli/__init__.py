"""`mstar <command>`: thin, typed commands that parse options and call the library.

Each module registers its commands on :data:`app`; heavy imports happen inside the command functions
so ``mstar --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator

import typer

from mstar.errors import MstarError

app = typer.Typer(
    name="mstar",
    help="mSTAR: multimodal self-taught pretraining for whole-slide pathology, end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich tables cut long option names at 80 columns
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)

# Each module registers its commands on `app` when imported. Add a module here when it lands.
COMMAND_MODULES = ("slide", "data", "demo", "train", "models", "features", "pretrain", "zeroshot",
                   "multimodal", "selftrain", "predict")
for _name in COMMAND_MODULES:
    importlib.import_module(f"mstar.cli.{_name}")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the mstar version and exit.",
                                       is_eager=True)) -> None:
    if version:
        from mstar import __version__

        print(f"mstar {__version__}")
        raise typer.Exit()


INTERRUPTED = "interrupted; finished outputs are kept and a re-run resumes"


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system failure: what failed, on which path, and what to do."""
    import errno

    path = exc.filename or ""
    if exc.filename2:
        path = f"{path} -> {exc.filename2}"
    what = (exc.strerror or type(exc).__name__).splitlines()[0]
    what = what.split(" (file write failed")[0]  # HDF5 appends its whole write call to the reason
    hint = {errno.ENOSPC: "free space or write --out elsewhere; finished outputs are kept, a re-run resumes",
            errno.EDQUOT: "free space or write --out elsewhere; finished outputs are kept, a re-run resumes",
            errno.EFBIG: "the file system refused a file this large; write --out elsewhere",
            errno.EACCES: "check the permissions, or write --out elsewhere",
            errno.EPERM: "check the permissions, or write --out elsewhere",
            errno.EROFS: "the file system is read-only; write --out elsewhere",
            errno.ENOTDIR: "a path component is a file, not a folder; give a folder",
            errno.EISDIR: "a folder was given where a file is expected"}.get(exc.errno, "")
    text = f"{path}: {what}" if path else what
    return f"{text} ({hint})" if hint else text


class _WarningLines(logging.Handler):
    """``warning: <message>`` (the form of the CLI's ``error:`` lines) on the ``sys.stderr`` of the moment
    (a captured or replaced stream included)."""

    mstar_cli = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - a closed or broken stderr must not end the command
            self.handleError(record)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """While a command runs: mstar's warnings (``logging`` and ``warnings.warn``) as ``warning: <message>``
    lines on stderr, not Python's ``file:line: UserWarning`` form with the source line; other libraries'
    warnings unchanged. Undone afterwards, so code calling :func:`main` in-process keeps its own set-up."""
    import warnings
    from pathlib import Path

    logger = logging.getLogger("mstar")
    # only where Python's last-resort handler would print (no handler set up by the caller), else twice
    configured = logging.getLogger().handlers or any(getattr(h, "mstar_cli", False) for h in logger.handlers)
    handler = None if configured else _WarningLines(logging.WARNING)
    if handler is not None:
        logger.addHandler(handler)
    package = str(Path(__file__).resolve().parents[1])
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(package):
            try:
                print(f"warning: {message}", file=sys.stderr)
            except OSError:  # as Python's own: a closed or broken stderr loses the warning, not the run
                pass
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default
        if handler is not None:
            logger.removeHandler(handler)


def main(argv: list[str] | None = None) -> None:
    """Console entry point, the CLI's one error boundary: user errors and operating-system failures (no space,
    permission, not a directory) become one line on stderr and exit status 1; Ctrl-C says what is kept and
    exits 130."""
    from typer.exceptions import TyperException

    with one_line_warnings():
        try:
            code = app(args=argv, standalone_mode=False)
        except MstarError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        except (KeyboardInterrupt, typer.Abort) as exc:
            cause = exc.__cause__
            if isinstance(cause, EOFError):  # typer reports an EOFError (a truncated pickle...) as an abort
                print(f"error: unexpected end of a file or stream ({cause or 'EOFError'})", file=sys.stderr)
                sys.exit(1)
            print(INTERRUPTED, file=sys.stderr)
            sys.exit(130)
        except TyperException as exc:  # usage errors (click's, vendored by typer): their message and status
            if not hasattr(exc, "show"):
                raise
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        except OSError as exc:
            print(f"error: {os_error_line(exc)}", file=sys.stderr)
            sys.exit(1)
        if code == 130:  # typer turns Ctrl-C inside a command into exit status 130 without a word
            print(INTERRUPTED, file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
