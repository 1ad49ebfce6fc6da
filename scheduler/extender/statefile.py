"""`--state-file`: the books of a `--cluster` extender, kept across restarts.

An append-only journal of JSON lines, one per change (`bind` with the whole allocation record,
`release` with the UID, `gate` with a gang or quota record from `scheduler.core.gate_records`:
pending gang members, reservations, their end), flushed to the OS on every change so a crashed process loses nothing
(an OS crash may lose the last lines: this is a lab mode; in a cluster the pod annotations are
the record). On open the journal is replayed and rewritten compactly (write to a temp file,
fsync, rename). A torn last line, the mark of a crash mid-write, is dropped with a warning;
any other bad line is an error naming the file and line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from scheduler.core.allocation import Allocation

log = logging.getLogger(__name__)


class StateFileError(Exception):
    """The journal cannot be read; the message names the file and line."""


class StateJournal:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = None
        self._lines = 0
        self._live = 0
        self.gate_records: list[dict] = []
        """The `gate` records `load` read, in order, for `Gatekeeper.restore_records`."""

    def load(self) -> list[Allocation]:
        """Replay the journal into the allocations it describes (in bind order)."""
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
                entry = orjson.loads(line)
                if entry["op"] == "bind":
                    alloc = Allocation.from_record(entry["allocation"])
                    live[alloc.uid] = alloc
                elif entry["op"] == "release":
                    live.pop(entry["uid"], None)
                elif entry["op"] == "gate":
                    if not isinstance(entry["record"], dict) or "kind" not in entry["record"]:
                        raise ValueError("a gate line needs a record with a kind")
                    self.gate_records.append(entry["record"])
                else:
                    raise ValueError(f"unknown op {entry['op']!r}")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                if number == len(lines) or (number == len(lines) - 1 and not lines[-1].strip()):
                    log.warning("%s: dropping a torn last line (%s)", self.path, e)
                    continue
                raise StateFileError(f"{self.path}:{number}: not a state record ({e})") from None
        return sorted(live.values(), key=lambda a: a.sequence)

    def open(self, allocations: list[Allocation], gate_records: list[dict] = ()) -> None:
        """Rewrite the journal compactly with `allocations` (then `gate_records`), then append to it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for alloc in allocations:
                f.write(_line("bind", allocation=alloc.to_record()))
            for record in gate_records:
                f.write(_line("gate", record=record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the server's lifetime
        self._lines = self._live = len(allocations)
        self._lines += len(gate_records)

    def bound(self, alloc: Allocation) -> None:
        self._write(_line("bind", allocation=alloc.to_record()))
        self._live += 1

    def released(self, uid: str) -> None:
        self._write(_line("release", uid=uid))
        self._live -= 1

    def noted(self, records: list[dict]) -> None:
        """Gang and quota records (`Gatekeeper.journal.drain()`), in the order they happened."""
        for record in records:
            self._write(_line("gate", record=record))

    def needs_compaction(self) -> bool:
        return self._lines > 1024 and self._lines > 4 * max(self._live, 1)

    def _write(self, line: bytes) -> None:
        if self._file is None:
            raise RuntimeError("state journal not open")
        self._file.write(line)
        self._file.flush()
        self._lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _line(op: str, **fields) -> bytes:
    return orjson.dumps({"op": op, **fields}) + b"\n"
