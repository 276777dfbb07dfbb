"""`mstar <command>`: thin, typed commands that parse options and call the library.

Each module registers its commands on :data:`app`; heavy imports happen inside the command functions
so ``mstar --help`` stays instant.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mstar.errors import MstarError

app = typer.Typer(
    name="mstar",
    help="mSTAR: multimodal self-taught pretraining for whole-slide pathology, end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module registers its commands on `app` when imported. Add a module here when it lands.
COMMAND_MODULES = ("slide", "data", "demo", "train", "models", "features", "pretrain", "zeroshot",
                   "multimodal", "selftrain")
for _name in COMMAND_MODULES:
    importlib.import_module(f"mstar.cli.{_name}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 1."""
    try:
        app(args=argv, standalone_mode=True)
    except MstarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a re-run resumes", file=sys.stderr)
        sys.exit(130)
