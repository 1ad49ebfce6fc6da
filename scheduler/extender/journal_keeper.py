"""Keeping an engine's books and its `--state-file` journal in step (the service's `RecordKeeper`).

Owns: restoring the books from the journal on start, storing gang and quota records as they
happen, and compacting the journal into a snapshot of the books when it has grown. Binds and
releases are journaled by `MemoryBinder`, which refuses them when the disk does; gang and quota
records have nobody to refuse, so a failed write marks the journal stale instead and the next
compaction, a whole snapshot, puts them back. Must not know the file format (`statefile`) or the
system calls (`durable`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from scheduler.core.engine import Engine
from scheduler.extender.statefile import StateJournal

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5.0
"""After a failed compaction (a full disk), wait this long before writing a whole snapshot again."""


class JournalKeeper:
    def __init__(self, engine: Engine, journal: StateJournal, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.journal = journal
        self._monotonic = monotonic
        self._retry_at = 0.0

    def restore(self, restore_allocation: Callable) -> None:
        """Replay the journal into the engine, then rewrite it as a snapshot and start journaling."""
        for alloc in self.journal.load():
            restore_allocation(self.engine, alloc)
        for problem in self.engine.gates.restore_records(self.journal.gate_records):
            log.warning("restored a gang reservation with a discrepancy: %s", problem)
        self.journal.open(self._allocations(), self.engine.gates.snapshot_records())
        self.engine.gates.journal.enabled = True

    def note(self, records: list[dict]) -> None:
        try:
            self.journal.noted(records)
        except OSError as e:
            self.journal.stale = True
            log.error("cannot write %d gang/quota records to the state file (%s); a snapshot will replace them",
                      len(records), e.strerror or e)

    def settle(self) -> None:
        if not self.journal.needs_compaction() or self._monotonic() < self._retry_at:
            return
        try:
            self.journal.compact(self._allocations(), self.engine.gates.snapshot_records())
        except OSError as e:
            self._retry_at = self._monotonic() + RETRY_AFTER_S
            log.error("cannot compact the state file %s: %s", self.journal.path, e.strerror or e)

    def _allocations(self) -> list:
        return sorted(self.engine.allocations.values(), key=lambda a: a.sequence)
