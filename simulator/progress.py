"""A progress bar (rich) that goes quiet when output is not a terminal or when asked to."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def bar(description: str, total: int, *, console: Console | None = None, quiet: bool = False):
    """Yields `advance(n=1, description=None)`."""
    if quiet:
        yield lambda n=1, description=None: None
        return
    console = console or Console(stderr=True)
    if not console.is_terminal:  # a log file: one line per step instead of a live bar
        started = time.monotonic()
        done = [0]

        def log(n: int = 1, description: str | None = None) -> None:
            if n:
                done[0] += n
                console.print(f"[{done[0]}/{total}] {description or description_} "
                              f"({time.monotonic() - started:.0f} s)", highlight=False, soft_wrap=True)

        description_ = description
        yield log
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            progress.update(task, advance=n, **({"description": description} if description else {}))

        yield advance
