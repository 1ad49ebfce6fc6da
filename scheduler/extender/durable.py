"""Durable file writes for the state journal: an append that is all-or-nothing, and an atomic replace.

Owns the system calls that make a journal line durable; knows nothing of what a line means.

Rules kept here:
- `AppendOnlyFile.append` writes the whole of its bytes with `os.write` (no user-space buffer that
  could keep a refused line and flush it later), then `fdatasync`s. On any failure the file is
  truncated back to its length before the call, so a refused append leaves no byte behind, and the
  error is raised for the caller to refuse whatever it was recording.
- `AppendOnlyFile.replace` writes a temp file beside the target, fsyncs it, renames it over the
  target and fsyncs the directory: a reader (or a crash) sees the old file or the new one, never a
  mix; appends then go to the new file through the descriptor that wrote it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


class AppendOnlyFile:
    """A file appended to in whole, synced records; held open until `close`."""

    def __init__(self, path: Path, *, fd: int | None = None) -> None:
        self.path = path
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fd: int | None = fd
        self.size = os.fstat(fd).st_size
        """Bytes in the file: everything appended successfully, nothing else."""

    @classmethod
    def replace(cls, path: Path, chunks: Iterable[bytes]) -> AppendOnlyFile:
        """Make `path` hold exactly `chunks`, atomically and durably, and return it open for appends.

        The temp file is written, fsynced and renamed over `path` through the very descriptor
        that is returned, so there is no moment where appends could go to a file no longer at
        `path`. On failure the temp file is removed, `path` is untouched and the OSError raised.
        """
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[_write_some(fd, view):]
            os.fsync(fd)
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _sync_directory(path.parent)
        return cls(path, fd=fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def append(self, data: bytes) -> None:
        """Write all of `data` and make it durable, or raise OSError and leave the file as it was."""
        fd = self.fileno()
        view = memoryview(data)
        try:
            while view:  # a regular file may take part of a write (the disk filled up mid-way)
                view = view[_write_some(fd, view):]
            os.fdatasync(fd)
        except OSError:
            self._truncate()
            raise
        self.size += len(data)

    def _truncate(self) -> None:
        # Shrinking needs no space, so this succeeds on a full disk; should it fail anyway (EIO),
        # the file keeps a partial last line, which the loader drops as torn.
        with contextlib.suppress(OSError):
            os.ftruncate(self.fileno(), self.size)
            os.fdatasync(self.fileno())

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _write_some(fd: int, view: memoryview) -> int:
    written = os.write(fd, view)
    if written <= 0:  # no error and no progress: report a full disk rather than spin
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return written


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (without it a crash may bring the old name back).

    The rename has happened by now, so a failure here is only logged: the caller must go on
    with the new file, which is the one every reader sees.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("%s: cannot sync the directory after replacing a file: %s", directory, e.strerror or e)
