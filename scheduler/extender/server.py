"""Assembling and running an extender: from a cluster file (and state journal) to a listening app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from scheduler.clusterfile import ClusterSpec
from scheduler.core.engine import Engine, EngineSettings
from scheduler.extender.app import create_app
from scheduler.extender.service import ExtenderService, MemoryBinder
from scheduler.extender.statefile import StateJournal

log = logging.getLogger(__name__)


def cluster_service(spec: ClusterSpec, *, settings: EngineSettings | None = None,
                    journal: StateJournal | None = None, decide_in_filter: bool = False) -> ExtenderService:
    """An extender over a static cluster: the file's running pods, then the journal's record."""
    engine = Engine(spec.nodes, settings=settings)
    for alloc in spec.pods:
        _restore(engine, alloc)
    if journal is not None:
        for alloc in journal.load():
            _restore(engine, alloc)
        journal.open(sorted(engine.allocations.values(), key=lambda a: a.sequence))
    return ExtenderService(engine, binder=MemoryBinder(journal), decide_in_filter=decide_in_filter)


def _restore(engine: Engine, alloc) -> None:
    problem = engine.restore(alloc)
    if problem:
        log.warning("restored %s on %s with a discrepancy: %s", alloc.key, alloc.node, problem)


@dataclass
class RunningServer:
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(service: ExtenderService, *, host: str = "127.0.0.1", port: int = 0, prefix: str = "",
                extra_routes: Sequence = ()) -> RunningServer:
    """Listen on host:port (0 picks a free port) and return the base URL."""
    app = create_app(service, prefix=prefix)
    for add in extra_routes:
        add(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # the bound port when port=0
    bound = sockets[0].getsockname()[1] if sockets else port
    prefix_path = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return RunningServer(runner, f"http://{host}:{bound}{prefix_path}")


async def serve_forever(service: ExtenderService, *, host: str, port: int, prefix: str = "") -> None:
    server = await start(service, host=host, port=port, prefix=prefix)
    log.info("gpusched extender listening on %s (policy %s)", server.url, service.engine.settings.policy)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
