"""List, then watch from the list's resourceVersion; list again when the watch expires.

One `Reflector` per kind of object (client-go's reflector, in small):
  1. list (paged), hand the whole list to the sink (`replace`), remember its resourceVersion;
  2. watch from there with bookmarks; every event goes to the sink (`apply`) in order and moves
     the resourceVersion on; a BOOKMARK only moves it;
  3. the server ends the watch (its timeout): watch again from the last resourceVersion;
  4. the connection drops or stalls: watch again from the last resourceVersion after a backoff;
  5. the watch expires (HTTP 410 Gone, on the request or as an ERROR event): back to 1;
  6. any other error (an unreadable answer, or the sink failing on a list): back to 1 after a backoff.
A kind whose resource does not exist (a CRD not installed: 404) counts as an empty list; it is
looked for again every `absent_recheck_s`.

Threads: the blocking watch stream is read on a thread of its own, which parses each line and
posts it to the event loop (`call_soon_threadsafe`), so the sink, and the Engine behind it, only
ever run on the loop thread, in the order the server sent the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import urllib3

from scheduler.kube.backoff import Backoff, BackoffPolicy
from scheduler.kube.client import ApiError, KubeClient

log = logging.getLogger(__name__)


class Sink(Protocol):
    def replace(self, kind: str, items: list[Mapping[str, Any]]) -> None: ...

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Resource:
    """One kind to mirror: the client method that lists (and, with watch=True, watches) it."""

    kind: str
    method: Callable[[KubeClient], Callable[..., Any]]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    optional: bool = False
    """A custom resource that may not be installed (404 means: none)."""


@dataclass(frozen=True)
class ReflectorSettings:
    page_size: int = 500
    watch_timeout_s: int = 300
    """Server-side watch timeout; the watch is then simply renewed from the last resourceVersion."""
    stall_s: float = 30.0
    """No byte for this long beyond the server's timeout: the connection is dead."""
    absent_recheck_s: float = 30.0
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(initial_s=0.2, cap_s=10.0))


EXPIRED, DROPPED, ENDED, FAILED, STOPPED = "expired", "dropped", "ended", "error", "stopped"


class Reflector:
    def __init__(self, client: KubeClient, resource: Resource, sink: Sink, *,
                 settings: ReflectorSettings = ReflectorSettings(),
                 on_restart: Callable[[str, str], None] | None = None) -> None:
        self.client = client
        self.resource = resource
        self.sink = sink
        self.settings = settings
        self.on_restart = on_restart or (lambda kind, cause: None)
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.lists = 0
        self.absent = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"watch-{resource.kind}")
        self._response: urllib3.response.BaseHTTPResponse | None = None
        self._stopping = False
        self._backoff = Backoff(settings.backoff)

    # ------------------------------------------------------------------ loop side
    async def run(self) -> None:
        need_list = True
        try:
            while not self._stopping:
                if need_list:
                    if not await self._list():
                        continue
                    need_list = False
                    if self.absent:
                        await asyncio.sleep(self.settings.absent_recheck_s)
                        need_list = True
                        continue
                outcome = await self._watch()
                if outcome == STOPPED:
                    return
                if outcome != ENDED:
                    self.on_restart(self.resource.kind, outcome)
                if outcome == EXPIRED:
                    log.info("%s: watch expired at resourceVersion %s; listing again", self.resource.kind,
                             self.resource_version)
                    need_list = True
                elif outcome == DROPPED:
                    await asyncio.sleep(self._backoff.next())
                elif outcome == FAILED:
                    need_list = True
                    await asyncio.sleep(self._backoff.next())
        finally:
            self.stop()

    async def _list(self) -> bool:
        """One full (paged) list into the sink; False after a failure (already backed off)."""
        method = self.resource.method(self.client)
        items: list[Mapping[str, Any]] = []
        token = ""
        try:
            while True:
                kwargs: dict[str, Any] = dict(self.resource.kwargs, limit=self.settings.page_size)
                if token:
                    kwargs["_continue"] = token
                body = await self.client.call(f"list {self.resource.kind}", method, **kwargs)
                items.extend(body.get("items") or [])
                meta = body.get("metadata") or {}
                token = meta.get("continue") or ""
                if not token:
                    break
        except ApiError as e:
            if e.code == 404 and self.resource.optional:
                self._listed([], "", absent=True)
                return True
            if e.code == 410:  # the continue token expired mid-way: start the list over
                return False
            log.warning("%s: list failed: %s", self.resource.kind, e)
            await asyncio.sleep(self._backoff.next())
            return False
        try:
            self._listed(items, str(meta.get("resourceVersion") or ""), absent=False)
        except Exception:  # a bug in the sink: logged; list again after a backoff rather than stop mirroring
            log.exception("%s: applying the list failed", self.resource.kind)
            await asyncio.sleep(self._backoff.next())
            return False
        return True

    def _listed(self, items: list[Mapping[str, Any]], resource_version: str, *, absent: bool) -> None:
        self.sink.replace(self.resource.kind, items)
        self.resource_version = resource_version
        self.absent = absent
        self.lists += 1
        self._backoff.reset()
        self.synced.set()

    async def _watch(self) -> str:
        loop = asyncio.get_running_loop()
        deliver = self._deliver

        def post(*event: Any) -> None:
            try:
                loop.call_soon_threadsafe(deliver, *event)
            except RuntimeError:  # the loop is closing: nothing left to deliver to
                self._stopping = True

        outcome, version = await loop.run_in_executor(self._executor, self._stream, self.resource_version, post)
        if version:
            self.resource_version = version
        return STOPPED if self._stopping else outcome

    def _deliver(self, event: str, obj: Mapping[str, Any], version: str) -> None:
        if self._stopping:
            return
        if event != "BOOKMARK":
            self.sink.apply(self.resource.kind, event, obj)
            self._backoff.reset()
        if version:
            self.resource_version = version

    def stop(self) -> None:
        """End the watch (the stream thread returns) and the run loop."""
        self._stopping = True
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed: nothing to stop
                response.shutdown()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- thread side
    def _stream(self, version: str, post: Callable[..., Any]) -> tuple[str, str]:
        """Read one watch to its end on this thread; (outcome, last resourceVersion)."""
        timeout = self.settings.watch_timeout_s
        try:
            response = self.client.open_watch(
                self.resource.method(self.client), resource_version=version, timeout_seconds=timeout,
                _request_timeout=(self.client.settings.connect_timeout_s, timeout + self.settings.stall_s),
                **self.resource.kwargs)
        except ApiError as e:
            return (EXPIRED if e.code == 410 else DROPPED if e.transient else FAILED), version
        except (urllib3.exceptions.HTTPError, OSError):
            return DROPPED, version
        self._response = response
        if self._stopping:
            response.shutdown()
        buffer = b""
        try:
            for chunk in _chunks(response):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    outcome, version = self._line(line, version, post)
                    if outcome:
                        return outcome, version
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            return (STOPPED if self._stopping else DROPPED), version
        finally:
            self._response = None
            response.release_conn()
        return (STOPPED if self._stopping else ENDED), version

    def _line(self, line: bytes, version: str, post: Callable[..., Any]) -> tuple[str, str]:
        try:
            event = orjson.loads(line)
            kind, obj = event["type"], event["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("%s: unreadable watch event %r", self.resource.kind, line[:200])
            return DROPPED, version
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                return EXPIRED, version
            log.warning("%s: watch error %s", self.resource.kind, obj)
            return FAILED, version
        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if kind in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            post(kind, obj, version)
        return "", version


def _chunks(response: urllib3.response.BaseHTTPResponse):
    """The body as it arrives (a watch never ends on its own: no fixed-size reads)."""
    if response.chunked and response.supports_chunked_reads():
        yield from response.read_chunked(decode_content=True)
        return
    while True:
        data = response.read1(65536)
        if not data:
            return
        yield data
