"""Watch streams: newline-delimited JSON events over one chunked HTTP response, as the API server sends them.

Where a watch starts:
- no resourceVersion, or "0": synthetic ADDED events for the current objects, then every later change;
- `N`: the retained changes after `N`, then every later change; an ERROR event with a 410 Status (reason
  Expired) and the end of the stream when `N` is compacted away; an ERROR 504 when `N` is in the future;
- `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan`): the current objects, then a BOOKMARK
  annotated `k8s.io/initial-events-end`.

What a watcher sees of a change follows the watch cache: only its namespace and selectors; an object that
starts matching arrives as ADDED, one that stops matching as DELETED (with its previous content).
BOOKMARK events (with `allowWatchBookmarks=true`) carry the newest resourceVersion the watcher has been
brought up to: every `bookmark_interval` seconds and when `timeoutSeconds` ends the stream.

`WatchRegistry` lets the fake drop every open stream abruptly (connection reset, no final chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from . import errors, listing, wire
from .resources import Target
from .store import Change, HistoryCompacted, Store

DEFAULT_TIMEOUT = 1800.0  # the server's --min-request-timeout; real servers pick 1-2x this at random
_LIVENESS_TICK = 0.5  # how often an idle stream notices its client went away


class WatchRegistry:
    """The open watch streams of one server; touched only on the server's event loop."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[Any], web.Request] = {}

    def add(self, task: asyncio.Task[Any], request: web.Request) -> None:
        self._open[task] = request

    def discard(self, task: asyncio.Task[Any]) -> None:
        self._open.pop(task, None)

    def __len__(self) -> int:
        return len(self._open)

    def drop_all(self) -> int:
        """Reset every open stream's connection mid-response and stop its handler."""
        dropped = 0
        for task, request in list(self._open.items()):
            if request.transport is not None:
                request.transport.abort()
            task.cancel()
            dropped += 1
        self._open.clear()
        return dropped


async def serve_watch(request: web.Request, store: Store, target: Target, query: Mapping[str, str], *,
                      registry: WatchRegistry, bookmark_interval: float) -> web.StreamResponse:
    resource = target.resource
    matches = listing.object_matcher(resource, query)  # a bad selector is a plain 400, before streaming
    bookmarks = listing.flag(query, "allowWatchBookmarks")
    timeout = _timeout(query)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Change] = asyncio.Queue()

    def hand_over(change: Change) -> None:  # called by the store, from any thread, with its lock held
        with contextlib.suppress(RuntimeError):  # the loop is closing; the stream goes with it
            loop.call_soon_threadsafe(queue.put_nowait, change)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None
    registry.add(task, request)
    stream = _Stream(response, target, matches)
    try:
        start = _subscribe(store, target, query, hand_over)
        if isinstance(start, errors.ApiError):
            await stream.send({"type": "ERROR", "object": start.status()})
            return await stream.close()
        last_rv, initial, backlog, initial_end = start
        for obj in initial:
            served = wire.to_view(resource, obj)
            if matches(served):
                await stream.send({"type": "ADDED", "object": served})
        if initial_end and bookmarks:
            await stream.bookmark(last_rv, initial_events_end=True)
        for change in backlog:
            last_rv = change.rv
            await stream.change(change)
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + bookmark_interval
        while (remaining := deadline - loop.time()) > 0:
            try:
                wait = min(remaining, _LIVENESS_TICK, max(next_bookmark - loop.time(), 0.0) if bookmarks
                           else _LIVENESS_TICK)
                change = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return response
                if bookmarks and loop.time() >= next_bookmark:
                    await stream.bookmark(last_rv)
                    next_bookmark = loop.time() + bookmark_interval
                continue
            last_rv = change.rv
            await stream.change(change)
        if bookmarks:
            await stream.bookmark(last_rv)
        return await stream.close()
    except ConnectionError:  # the client went away mid-write
        return response
    finally:
        store.unsubscribe(hand_over)
        registry.discard(task)


def _timeout(query: Mapping[str, str]) -> float:
    text = query.get("timeoutSeconds", "")
    try:
        return float(int(text)) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise errors.bad_request(f'Invalid value: "{text}": timeoutSeconds must be an integer') from None


def _subscribe(store: Store, target: Target, query: Mapping[str, str], hand_over: Any,
               ) -> errors.ApiError | tuple[int, list[dict[str, Any]], list[Change], bool]:
    """(rv brought up to, initial objects, changes to replay, whether to mark the end of the initial ones)."""
    rv_text = query.get("resourceVersion", "")
    send_initial = listing.flag(query, "sendInitialEvents")
    with store.atomic():
        if send_initial or rv_text in ("", "0"):
            initial = store.items(target.resource.storage_key, target.namespace)
            store.subscribe(hand_over, since=None)
            return store.resource_version, initial, [], send_initial
        try:
            rv = listing.parse_rv(rv_text)
        except errors.ApiError as exc:
            return exc
        if rv > store.resource_version:
            return listing.too_large(rv, store.resource_version)
        try:
            backlog = store.subscribe(hand_over, since=rv)
        except HistoryCompacted as exc:
            return errors.expired(str(exc))
        return rv, [], backlog, False


class _Stream:
    """Writes events for one watcher, translating store changes into what its selectors let it see."""

    def __init__(self, response: web.StreamResponse, target: Target, matches: listing.Matcher) -> None:
        self._response = response
        self._target = target
        self._matches = matches

    async def send(self, event: dict[str, Any]) -> None:
        await self._response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    async def change(self, change: Change) -> None:
        event = self._event(change)
        if event is not None:
            await self.send(event)

    def _event(self, change: Change) -> dict[str, Any] | None:
        resource, namespace = self._target.resource, self._target.namespace
        if change.key[0] != resource.storage_key or (namespace is not None and change.key[1] != namespace):
            return None
        new = wire.to_view(resource, change.obj)
        if change.type == "ADDED":
            return {"type": "ADDED", "object": new} if self._matches(new) else None
        assert change.old is not None
        old = wire.to_view(resource, change.old)
        if change.type == "DELETED":
            return {"type": "DELETED", "object": new} if self._matches(old) else None
        now_matches, matched = self._matches(new), self._matches(old)
        if now_matches:
            return {"type": "MODIFIED" if matched else "ADDED", "object": new}
        if matched:
            old["metadata"] = {**old["metadata"], "resourceVersion": str(change.rv)}
            return {"type": "DELETED", "object": old}
        return None

    async def bookmark(self, rv: int, *, initial_events_end: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        resource = self._target.resource
        await self.send({"type": "BOOKMARK",
                         "object": {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}})

    async def close(self) -> web.StreamResponse:
        await self._response.write_eof()
        return self._response
