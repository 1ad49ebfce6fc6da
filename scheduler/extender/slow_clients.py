"""Deadlines for slow clients, on both listeners (the verbs' and the public one).

Owns: how long a request body may take to arrive, and how long a connection may sit idle or
half-way through its headers. Without them a client that announces `Content-Length: 100` and
sends 2 bytes holds its handler (and a socket) forever, and aiohttp keeps a connection that never
finishes its headers for an hour; a few hundred such connections exhaust file descriptors.

- A body must arrive whole within `body_timeout_s` of the handler starting to read it: it is read
  by a middleware before any handler runs (the handler's own `request.read()` then returns the
  same bytes), and a late one is answered 408 and its connection closed, without lingering to
  drain the rest. Nothing reached the books, so nothing needs undoing.
- A connection is closed after `idle_timeout_s` without a complete request: between requests
  (keep-alive) and while its request line and headers trickle in (aiohttp's keepalive_timeout,
  which counts from the connection's start and from each answer).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

DEFAULT_BODY_TIMEOUT_S = 5.0
"""kube-scheduler and the API server send a body at once; even a 64 MiB NodeList takes well under a second
on loopback or a cluster network."""
DEFAULT_IDLE_TIMEOUT_S = 75.0
"""Longer than the gaps between kube-scheduler's calls on a quiet cluster (it reconnects after anyway)."""


@dataclass(frozen=True)
class HttpLimits:
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S

    def __post_init__(self) -> None:
        for name in ("body_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def runner_options(self) -> dict[str, Any]:
        """Keyword arguments for `web.AppRunner`: idle and header deadline, and no lingering on a
        body left unread (a 408's connection closes at once instead of draining for 10 s)."""
        return {"keepalive_timeout": self.idle_timeout_s, "lingering_time": 0}

    def middleware(self):
        """Reads every request body within `body_timeout_s`, else answers 408 and closes."""
        timeout = self.body_timeout_s

        @web.middleware
        async def body_deadline(request: web.Request, handler):
            if request.body_exists:
                try:
                    async with asyncio.timeout(timeout):
                        await request.read()
                except TimeoutError:
                    response = web.Response(status=408, content_type="application/json", body=orjson.dumps(
                        {"Error": f"{request.path}: body not received within {timeout:g} s"}))
                    response.force_close()
                    return response
            return await handler(request)

        return body_deadline


DEFAULT_LIMITS = HttpLimits()
