"""Plays the rehearsals policies asked for (`core.rehearsal_board`) off the scheduling path.

A rehearsal takes seconds; a filter or prioritize answer must take milliseconds. So the server
plays the latest rehearsal wanted in a worker thread, one at a time, and settles its verdict on
the board, where the next scoring call finds it. A rehearsal reads only its own immutable inputs and
builds its own miniature cluster, never the books, so the thread shares nothing with the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from scheduler.core.rehearsal_board import Rehearsals, Verdict

log = logging.getLogger(__name__)

POLL_S = 0.25
"""How often the board is checked for a rehearsal wanted (a new workload mix is a rare event)."""
IDLE_AFTER = 3.0
"""After a rehearsal that took t seconds, none starts for IDLE_AFTER · t: rehearsals take at most
a quarter of one core however fast the workload mix shifts (the latest mix is played next)."""


Played = Callable[[Verdict, float], None]
"""Told of each rehearsal settled: its verdict and the seconds it took (the server's metrics)."""


async def play_wanted(board: Rehearsals, played: Played | None = None) -> float:
    """Play the rehearsal wanted now, if any, in a worker thread and settle it; returns the
    seconds it took (0 when nothing was wanted or it failed)."""
    wanted = board.wanted()
    if wanted is None:
        return 0.0
    key, play = wanted
    started = time.perf_counter()
    try:
        verdict = await asyncio.to_thread(play)
    except Exception:  # a bug: logged; FGD's order (or the last verdict) keeps deciding
        log.exception("a policy rehearsal failed")
        return 0.0
    took = time.perf_counter() - started
    board.settle(key, verdict)
    if played is not None:
        played(verdict, took)
    log.info("%s (played in %.1f s)", verdict.describe("fgd-plus-terms", "fgd"), took)
    return took


@contextlib.asynccontextmanager
async def rehearsing(board: Rehearsals | None, played: Played | None = None,
                     poll_s: float | None = None) -> AsyncIterator[None]:
    """While inside, play what the board wants (every `poll_s`, default `POLL_S`; at most a quarter
    of a core); nothing when there is no board."""
    if board is None:
        yield
        return

    poll = POLL_S if poll_s is None else poll_s

    async def loop() -> None:
        while True:
            took = await play_wanted(board, played)
            await asyncio.sleep(max(poll, IDLE_AFTER * took))

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
