"""The state journal's line format: one JSON object per line, `op` bind, release or gate.

    {"op": "bind", "allocation": <Allocation.to_record()>}
    {"op": "release", "uid": "<pod UID>"}
    {"op": "gate", "record": <a gate_records record>}

`decode` checks a line completely (`scheduler.core.record_checks`) before anything is built from
it, and raises `LineError` naming the field; `encode` writes what `decode` reads. Must not know
files, line numbers or what the records mean to the books.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from scheduler.core.allocation import Allocation
from scheduler.core.record_checks import RecordError, check_allocation, check_gate

_FIELDS = {"bind": "allocation", "release": "uid", "gate": "record"}


class LineError(ValueError):
    """A line that is not a journal record; the message says where in it and why."""


class NotJson(LineError):
    """Not even JSON: what a write cut short leaves (a prefix of a JSON object never parses)."""


@dataclass(frozen=True)
class Bind:
    allocation: Allocation


@dataclass(frozen=True)
class Release:
    uid: str


@dataclass(frozen=True)
class Gate:
    record: dict[str, Any]


def encode(op: str, value: Any) -> bytes:
    return orjson.dumps({"op": op, _FIELDS[op]: value}) + b"\n"


def decode(line: bytes) -> Bind | Release | Gate:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise NotJson(f"not JSON ({e})") from None
    if not isinstance(entry, dict):
        raise LineError("not a JSON object")
    op = entry.get("op")
    field = _FIELDS.get(op) if isinstance(op, str) else None
    if field is None:
        raise LineError(f"op: unknown op {op!r} (known: {', '.join(_FIELDS)})")
    for name in entry:
        if name not in ("op", field):
            raise LineError(f"{name}: unknown field in a {op} line")
    if field not in entry:
        raise LineError(f"{field}: missing")
    value = entry[field]
    try:
        if op == "bind":
            check_allocation(value, "allocation")
            return Bind(Allocation.from_record(value))
        if op == "gate":
            check_gate(value, "record")
            return Gate(value)
    except RecordError as e:
        raise LineError(str(e)) from None
    if not isinstance(value, str) or not value:
        raise LineError(f"uid: must be a non-empty string, got {value!r}")
    return Release(value)
