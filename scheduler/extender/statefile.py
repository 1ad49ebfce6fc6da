"""`--state-file`: the books of a `--cluster` extender, kept across restarts.

An append-only journal of JSON lines, one per change (`bind` with the whole allocation record,
`release` with the UID, `gate` with a gang or quota record from `scheduler.core.gate_records`:
pending gang members, reservations, their end). Each change is written whole and synced before
the caller acknowledges it (`durable.AppendOnlyFile`); a write the disk refuses raises OSError and
leaves no byte behind, so the caller refuses the bind or release it was recording. On open the
journal is replayed and rewritten as a snapshot (`durable.AppendOnlyFile.replace`), and again
whenever it grows past `COMPACT_FACTOR` times the last snapshot. A torn last line, the mark of
a crash mid-write (a last line without its newline that is not JSON), is dropped with a warning; any other line
that is not a record gpusched writes (`state_lines.decode`: every field's type and range) is an
error naming the file, the line and the field.

One server per state file: `lock` takes `F.lock` (`statelock`) before the file is read, and holds
it until `close`; a second server fails there, before it has changed anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from scheduler.core.allocation import Allocation
from scheduler.extender import state_lines
from scheduler.extender.durable import AppendOnlyFile
from scheduler.extender.statelock import StateFileBusy, StateLock

log = logging.getLogger(__name__)

COMPACT_FACTOR = 4
"""The journal is rewritten as a snapshot once it is this many times the size of the last one:
each rewrite of S bytes follows at least 3·S bytes of appends, so compaction is O(1) per change."""
COMPACT_MIN_BYTES = 1 << 20
"""...and never below this size (a handful of pods would be rewritten every few binds)."""


class StateFileError(Exception):
    """The journal cannot be used; one line naming the file (and the line and field, for a bad line)."""


class StateJournal:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = StateLock(self.path)
        self._file: AppendOnlyFile | None = None
        self._snapshot_bytes = 0
        self.stale = False
        """Records were lost (a write the disk refused that nobody could refuse in turn: gang and
        quota records); the next compaction writes a whole snapshot, which restores them."""
        self.gate_records: list[dict] = []
        """The `gate` records `load` read, in order, for `Gatekeeper.restore_records`."""

    def lock(self) -> None:
        """Make this process the file's only user, until `close` (idempotent; `load` and `open`
        take it too). Raises StateFileError when another process holds it."""
        try:
            self._lock.acquire()
        except StateFileBusy as e:
            raise StateFileError(str(e)) from None
        except OSError as e:
            raise StateFileError(f"{self._lock.path}: {e.strerror or e}") from None

    def load(self) -> list[Allocation]:
        """Replay the journal into the allocations it describes (in bind order)."""
        self.lock()
        live: dict[str, Allocation] = {}
        self.gate_records = []
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError as e:
            raise StateFileError(f"{self.path}: {e.strerror}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = state_lines.decode(line)
            except state_lines.LineError as e:
                if number == len(lines) and isinstance(e, state_lines.NotJson):  # no newline: a write cut short
                    log.warning("%s: dropping a torn last line (%s)", self.path, e)
                    continue
                raise StateFileError(f"{self.path}:{number}: not a state record: {e}") from None
            if isinstance(entry, state_lines.Bind):
                live[entry.allocation.uid] = entry.allocation
            elif isinstance(entry, state_lines.Release):
                live.pop(entry.uid, None)
            else:
                self.gate_records.append(entry.record)
        return sorted(live.values(), key=lambda a: a.sequence)

    def open(self, allocations: list[Allocation], gate_records: Iterable[dict] = ()) -> None:
        """Rewrite the journal as a snapshot of `allocations` (then `gate_records`), then append to it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock()
        self.compact(allocations, gate_records)

    def compact(self, allocations: Iterable[Allocation], gate_records: Iterable[dict] = ()) -> None:
        """Replace the journal by a snapshot of what it amounts to (the caller's current books).

        Atomic: until the rename the old journal stays whole and in use, so a failure (a full
        disk) raises OSError and changes nothing; after it, appends go to the new file. Only
        while the lock is held: the rename must never swap the file under another server.
        """
        if not self._lock.held:
            raise RuntimeError("state journal not locked")
        new = AppendOnlyFile.replace(self.path, _snapshot_lines(allocations, gate_records))
        old, self._file = self._file, new
        if old is not None:
            old.close()
        self._snapshot_bytes = new.size
        self.stale = False

    def bound(self, alloc: Allocation) -> None:
        """Record a bind; raises OSError (and records nothing) when the disk refuses."""
        self._append(state_lines.encode("bind", alloc.to_record()))

    def released(self, uid: str) -> None:
        """Record a release; raises OSError (and records nothing) when the disk refuses."""
        self._append(state_lines.encode("release", uid))

    def noted(self, records: list[dict]) -> None:
        """Gang and quota records (`Gatekeeper.journal.drain()`), in the order they happened: all or none."""
        if records:
            self._append(b"".join(state_lines.encode("gate", record) for record in records))

    def needs_compaction(self) -> bool:
        """The journal has grown well past its live content, or lost records a snapshot restores."""
        if self._file is None:
            return False
        return self.stale or self._file.size > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self._snapshot_bytes)

    def fileno(self) -> int:
        if self._file is None:
            raise RuntimeError("state journal not open")
        return self._file.fileno()

    def _append(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("state journal not open")
        self._file.append(data)

    def close(self) -> None:
        """Stop appending and let another process have the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()


def _snapshot_lines(allocations: Iterable[Allocation], gate_records: Iterable[dict]) -> Iterator[bytes]:
    for alloc in allocations:
        yield state_lines.encode("bind", alloc.to_record())
    for record in gate_records:
        yield state_lines.encode("gate", record)
