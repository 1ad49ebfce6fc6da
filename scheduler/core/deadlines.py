"""Keys with a deadline each, and which are due by a given time: a heap with lazy deletion.

Owns only the ordering; what a key is and what falls due is the caller's. Costs: `set` and
`discard` O(log n) / O(1), `pop_due` O(log n) per key due and O(1) when none is, so a sweep
that runs on every call stays cheap however many keys wait. A replaced or discarded deadline
stays in the heap as a stale entry until it surfaces or the heap is rebuilt (when stale entries
outnumber live ones), so the heap holds at most about twice the live keys.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._current: dict[K, tuple[float, int]] = {}
        """key -> (its deadline, the sequence number of its live heap entry)."""
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: K) -> bool:
        return key in self._current

    def set(self, key: K, at: float) -> None:
        """Give `key` the deadline `at`, replacing any it had."""
        self._sequence += 1
        self._current[key] = (at, self._sequence)
        heapq.heappush(self._heap, (at, self._sequence, key))  # the sequence breaks ties: keys are never compared
        if len(self._heap) > 2 * len(self._current) + 64:
            self._heap = [e for e in self._heap if self._current.get(e[2], (0.0, -1))[1] == e[1]]
            heapq.heapify(self._heap)

    def discard(self, key: K) -> None:
        self._current.pop(key, None)

    def pop_due(self, now: float) -> list[K]:
        """Keys whose deadline is at or before `now`, earliest first; they leave the queue."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, sequence, key = heapq.heappop(heap)
            if self._current.get(key, (0.0, -1))[1] == sequence:
                del self._current[key]
                due.append(key)
        return due
