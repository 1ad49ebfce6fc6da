"""What tests inject and observe: scripted failures and delays, and the log of requests served.

A `Fault` answers the next `count` requests whose method and path match with an error Status (and/or holds
them for `delay` seconds first) before the fake looks at them, as a flaky or overloaded API server would.
Faults are consumed first-registered-first. Every request is logged, including the ones a fault answered.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class RecordedRequest(NamedTuple):
    """One request as the fake received it; `body` is the decoded JSON (or None / the raw text)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str  # an HTTP method, or "*" for any
    path_regex: str
    status: int | None  # None: only delay, then serve normally
    count: int = 1
    delay: float = 0.0
    message: str | None = None
    retry_after: int | None = None
    hits: int = field(default=0, init=False)  # how many requests it has answered so far

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and re.search(self.path_regex, path) is not None

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.count


class Faults:
    """The pending faults; registered from the test's thread, consumed on the server's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.exhausted:
                        self._pending.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
