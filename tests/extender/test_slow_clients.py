"""Slow clients are cut off, over a real loopback socket (issue 13, item 13).

A request announcing `Content-Length: 100` and sending 2 bytes was held forever (300 such
connections stayed open); a connection that never finished its headers stayed for aiohttp's
default hour. Now a body must arrive within `body_timeout_s` (408, connection closed) and a
connection idle or stuck in its headers is closed after `idle_timeout_s`, on both listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from scheduler.clusterfile import load_cluster
from scheduler.extender.public import start_public
from scheduler.extender.server import cluster_service, start
from scheduler.extender.slow_clients import HttpLimits
from scheduler.extender.webhook import WebhookSettings
from tests.extender.conftest import EXAMPLES

LIMITS = HttpLimits(body_timeout_s=0.5, idle_timeout_s=1.0)


@contextlib.asynccontextmanager
async def listening(public: bool) -> AsyncIterator[tuple[object, str]]:
    service = cluster_service(load_cluster(EXAMPLES / "mixed.yaml"))
    if public:
        running = await start_public(service, webhook=WebhookSettings(), host="127.0.0.1", port=0,
                                     ssl_context=None, limits=LIMITS)
    else:
        running = await start(service, limits=LIMITS)
    try:
        yield service, running.url
    finally:
        await running.close()


async def exchange(url: str, raw: bytes, *, within: float) -> tuple[bytes, float]:
    """Send `raw` and read until the server closes; (everything read, seconds it took)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), within)  # read() returns at EOF: the server closed
        return answer, time.monotonic() - started
    finally:
        writer.close()


@pytest.mark.parametrize(("public", "path"), [(False, "/filter"), (False, "/bind"), (True, "/mutate")],
                         ids=["filter", "bind", "mutate"])
async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(public, path):
    async with listening(public) as (service, url):
        before = service.state()
        raw = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        answer, took = await exchange(url, raw.encode(), within=5)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"body not received within 0.5 s" in answer
        assert 0.4 <= took < 3
        assert service.state() == before


@pytest.mark.parametrize("public", [False, True], ids=["verbs", "public"])
async def test_a_connection_that_never_finishes_its_headers_is_closed(public):
    async with listening(public) as (_service, url):
        answer, took = await exchange(url, b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Len", within=5)
        assert answer == b"" and 0.8 <= took < 4


async def test_many_slow_bodies_do_not_stop_anyone_else():
    async with listening(False) as (_service, url):
        host, port = url.split("//")[1].split(":")
        slow = [await asyncio.open_connection(host, int(port)) for _ in range(50)]
        for _reader, writer in slow:
            writer.write(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as response:
            assert response.status == 200  # answered while 50 bodies trickle
        answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in slow)), 5)
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
        for _reader, writer in slow:
            writer.close()


def test_limits_are_validated():
    with pytest.raises(ValueError, match="body_timeout_s"):
        HttpLimits(body_timeout_s=0)
    with pytest.raises(ValueError, match="idle_timeout_s"):
        HttpLimits(idle_timeout_s=float("nan"))
