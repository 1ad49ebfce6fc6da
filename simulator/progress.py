"""Progress (rich): a live bar on a terminal, one line per finished step in a log, nothing when quiet.

`bar(description, total)` yields `advance(n=1, description=None, *, completed=None, total=None)`:
- `advance(1, "label")`: one step done (a run of many); in a log, that step's line;
- `advance(0, completed=done, total=of)`: where a single run is (`of` may grow: a job restarted
  after a GPU failure adds events), silent in a log; until the first such call a bar whose total is
  None is an honest spinner;
- the step that ends a run (`n=1` with `completed`) prints its final line in a log.

In a log each line says which step it is and of how many (`[3/16]`), and nothing else is
printed, so a CI log holds exactly one line per run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def bar(description: str, total: int | None, *, console: Console | None = None, quiet: bool = False,
        step: tuple[int, int] | None = None):
    """`step` (i, n): this bar is the i-th of n (1-based), for the log line's `[i/n]`."""
    if quiet:
        yield lambda n=1, description=None, *, completed=None, total=None: None
        return
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield _log_lines(console, description, total, step)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None, *, completed: int | None = None,
                    total: int | None = None) -> None:
            fields = {"description": description} if description else {}
            if total is not None:
                fields["total"] = total
            if completed is not None:
                fields["completed"] = completed
            elif n:
                fields["advance"] = n
            progress.update(task, **fields)

        yield advance


def _log_lines(console: Console, first: str, of: int | None, step: tuple[int, int] | None):
    started = time.monotonic()
    done = [0]

    def advance(n: int = 1, description: str | None = None, *, completed: int | None = None,
                total: int | None = None) -> None:
        if not n:
            return
        done[0] += n
        where = f"{step[0]}/{step[1]}" if step else f"{done[0]}/{of if of is not None else '?'}"
        console.print(f"[{where}] {description or first} ({time.monotonic() - started:.0f} s)",
                      highlight=False, soft_wrap=True)

    return advance
