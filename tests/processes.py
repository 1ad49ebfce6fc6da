"""Stopping a server process the way its tests need: a signal, a grace period, then SIGKILL."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen, sig: int, *, grace_s: float = 10.0) -> int:
    """Send `sig`, wait up to `grace_s` for the process to exit, then kill it; its exit code
    (negative: ended by that signal, as a process with no handler for it is)."""
    process.send_signal(sig)
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
