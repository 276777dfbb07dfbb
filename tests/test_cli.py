import re

import pytest
from typer.testing import CliRunner

from mstar.cli import app

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_help_lists_every_command_with_one_line():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in _commands():
        assert re.search(rf"│ {re.escape(name)}\s+\S", result.output), name


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help(name):
    result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Usage" in result.output
