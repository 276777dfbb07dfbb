"""`mstar models`: the registered model architectures."""

from __future__ import annotations

from mstar.cli import app


@app.command("models")
def models() -> None:
    """List the model architectures that `create_model(name)` builds, one line each."""
    from rich.console import Console
    from rich.table import Table

    from mstar.models.registry import list_models

    table = Table("name", "description", box=None, show_header=True, header_style="bold")
    for name, description in list_models().items():
        table.add_row(name, description)
    Console(width=160).print(table)
