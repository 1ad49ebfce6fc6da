"""One state file, one server: an exclusive lock on `F.lock`, beside the state file F.

Owns the lock file. The lock is `flock(LOCK_EX | LOCK_NB)` on `F.lock`, not on F itself: F is
replaced by a rename at every compaction, and a lock on the old F would not keep a second server
off the new one. The lock is released by the kernel when the holder's process ends however it
ends (a SIGKILL included), so there is never a stale lock to clean up; the pid written into the
file is only for the message a second server prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class StateFileBusy(Exception):
    """Another process holds the state file's lock; the message names the file and its pid."""


class StateLock:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.path = state_file.with_name(state_file.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock for this process's life (or until `release`). Idempotent.

        Raises StateFileBusy when another process holds it, OSError when the file cannot be made.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StateFileBusy(f"state file {self.state_file} is in use by another gpusched{who}") from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the pid is for the message only; a full disk must not stop us
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
