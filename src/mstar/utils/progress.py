"""Progress bars that work in a terminal and degrade to nothing in logs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def progress_bar(transient: bool = False) -> Progress:
    """A rich progress bar with count, elapsed and remaining time, plus a free ``rate`` text field."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
    )


def track(items: Iterable[T], total: int | None, description: str, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (no bar when ``enabled`` is false)."""
    if not enabled:
        yield from items
        return
    with progress_bar() as bar:
        task = bar.add_task(description, total=total, rate="")
        for item in items:
            yield item
            bar.advance(task)
