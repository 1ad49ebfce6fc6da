"""Serving until the process is asked to stop, by either of the signals that ask.

The kubelet stops a terminating pod with SIGTERM, and only after the grace period with SIGKILL;
left at its default, SIGTERM would end the process at once, so a replica would never give up its
lease (the standby waits the lease out) nor finish a bind in flight. SIGINT is handled the same way
rather than left to asyncio.run, which does not install its own handler when the process was started
with SIGINT ignored (as `nohup` or a shell's background job does).
"""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def until_stop_signal() -> None:
    """Return once SIGTERM or SIGINT arrives; the caller's `finally` then shuts down in order.
    Off the main thread signals cannot be caught: it then waits until cancelled."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, stop.set)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
            continue
        installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
