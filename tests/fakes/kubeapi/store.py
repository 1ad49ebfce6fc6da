"""The versioned object store: the fake's etcd.

Rules this module keeps:
- One global, monotonically increasing resourceVersion across every kind, bumped once per write.
- Every write is a `Change` appended to a bounded history; compaction forgets the oldest changes, and the
  store answers `HistoryCompacted` for any read or watch that needs a forgotten change (the HTTP layer turns
  that into 410 Gone / Expired).
- A subscriber registered with `subscribe(since=rv)` gets the retained changes after `rv` and then every
  later change, with no gap and no duplicate, because both happen under the same lock as the writes.
- Objects go in and come out as deep copies; nobody outside holds a reference into the store.

The store knows nothing about HTTP, validation or kinds; it is thread-safe (tests seed it from their own
thread while the server's event loop serves requests).
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str]  # (storage, namespace or "", name)


@dataclass(frozen=True)
class Change:
    """One committed write. For DELETED, `obj` is the last state stamped with the deletion's resourceVersion."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    obj: dict[str, Any]
    old: dict[str, Any] | None


class HistoryCompacted(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, *, history_limit: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._rv = 0
        # Changes with rv <= _compacted are forgotten; reading "as of" an rv below it is impossible.
        self._compacted = 0
        self._subscribers: list[Callable[[Change], None]] = []

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the store for a read-modify-write (re-entrant)."""
        with self._lock:
            yield

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        return self._compacted

    def get(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, storage: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Current objects of one storage (one namespace, or all), ordered by (namespace, name) as etcd keys."""
        with self._lock:
            return [copy.deepcopy(obj) for key, obj in sorted(self._objects.items())
                    if key[0] == storage and (namespace is None or key[1] == namespace)]

    def items_at(self, storage: str, namespace: str | None, rv: int) -> list[dict[str, Any]]:
        """The objects as they were right after write `rv`, rebuilt by undoing the later retained changes."""
        with self._lock:
            if rv < self._compacted:
                raise HistoryCompacted(rv, self._compacted)
            state = {key: obj for key, obj in self._objects.items() if key[0] == storage}
            for change in reversed(self._history):
                if change.rv <= rv:
                    break
                if change.key[0] != storage:
                    continue
                if change.type == "ADDED":
                    state.pop(change.key, None)
                else:
                    assert change.old is not None
                    state[change.key] = change.old
            return [copy.deepcopy(obj) for key, obj in sorted(state.items())
                    if namespace is None or key[1] == namespace]

    def write(self, key: Key, obj: dict[str, Any]) -> Change:
        """Create or replace `key`, stamping the new resourceVersion into the stored object."""
        with self._lock:
            old = self._objects.get(key)
            self._rv += 1
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
            self._objects[key] = stored
            return self._record(Change(self._rv, "MODIFIED" if old is not None else "ADDED", key,
                                       copy.deepcopy(stored), old))

    def remove(self, key: Key) -> Change:
        with self._lock:
            old = self._objects.pop(key)
            self._rv += 1
            last = copy.deepcopy(old)
            last["metadata"]["resourceVersion"] = str(self._rv)
            return self._record(Change(self._rv, "DELETED", key, last, old))

    def _record(self, change: Change) -> Change:
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        for notify in list(self._subscribers):
            notify(change)
        return change

    def compact(self, *, keep: int = 0) -> None:
        """Forget all but the newest `keep` changes, as an etcd compaction does."""
        with self._lock:
            while len(self._history) > keep:
                self._compacted = self._history.popleft().rv
            if keep == 0:
                self._compacted = self._rv

    def subscribe(self, notify: Callable[[Change], None], *, since: int | None) -> list[Change]:
        """Register `notify` for every later write; return the retained changes after `since` (if given).

        `notify` is called with the store's lock held, from whichever thread writes: it must only hand the
        change over (e.g. `loop.call_soon_threadsafe`), never block or write back.
        """
        with self._lock:
            backlog: list[Change] = []
            if since is not None:
                if since < self._compacted:
                    raise HistoryCompacted(since, self._compacted)
                backlog = [c for c in self._history if c.rv > since]
            self._subscribers.append(notify)
            return backlog

    def unsubscribe(self, notify: Callable[[Change], None]) -> None:
        with self._lock:
            if notify in self._subscribers:
                self._subscribers.remove(notify)
