"""Assembling and running an extender: from a cluster file (and state journal) to a listening app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from aiohttp import web

from scheduler.clusterfile import ClusterSpec
from scheduler.configfile import GatesConfig
from scheduler.core.engine import Engine, EngineSettings
from scheduler.extender.app import create_app
from scheduler.extender.service import ExtenderService, MemoryBinder
from scheduler.extender.slow_clients import DEFAULT_LIMITS, HttpLimits
from scheduler.extender.statefile import StateJournal

log = logging.getLogger(__name__)


def cluster_service(spec: ClusterSpec, *, settings: EngineSettings | None = None,
                    journal: StateJournal | None = None, decide_in_filter: bool = False,
                    gates: GatesConfig | None = None, clock: Callable[[], float] = time.time) -> ExtenderService:
    """An extender over a static cluster: the file's running pods, then the journal's record.

    `gates` configures teams and gangs; `clock` times gang reservations (wall time by default, so
    deadlines recorded in the state file stay meaningful across restarts).
    """
    engine = cluster_engine(spec, settings=settings, gates=gates, clock=clock)
    if journal is not None:
        for alloc in journal.load():
            _restore(engine, alloc)
        for problem in engine.gates.restore_records(journal.gate_records):
            log.warning("restored a gang reservation with a discrepancy: %s", problem)
        journal.open(sorted(engine.allocations.values(), key=lambda a: a.sequence), engine.gates.snapshot_records())
        engine.gates.journal.enabled = True
    service = ExtenderService(engine, binder=MemoryBinder(journal), decide_in_filter=decide_in_filter)
    if journal is not None:
        service.record_sink = journal.noted
    return service


def cluster_engine(spec: ClusterSpec, *, settings: EngineSettings | None = None, gates: GatesConfig | None = None,
                   clock: Callable[[], float] = time.time) -> Engine:
    """The engine over a static cluster: its nodes, teams, gang settings and PodGroups, then the
    file's running pods. `serve --cluster` and `explain` both start from it."""
    gates = gates or GatesConfig()
    settings = replace(settings or EngineSettings(), gangs=gates.gangs)
    engine = Engine(spec.nodes, settings=settings, clock=clock, quotas=gates.quotas)
    for group in gates.pod_groups:
        engine.gates.set_pod_group(group.namespace, group.name, group.min_member)
    for alloc in spec.pods:
        _restore(engine, alloc)
    return engine


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
                extra_routes: Sequence = (), limits: HttpLimits = DEFAULT_LIMITS) -> RunningServer:
    """Listen on host:port (0 picks a free port) and return the base URL."""
    app = create_app(service, prefix=prefix, limits=limits)
    for add in extra_routes:
        add(app)
    runner = web.AppRunner(app, access_log=None, **limits.runner_options())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # the bound port when port=0
    bound = sockets[0].getsockname()[1] if sockets else port
    prefix_path = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return RunningServer(runner, f"http://{host}:{bound}{prefix_path}")


async def serve_forever(service: ExtenderService, *, host: str, port: int, prefix: str = "",
                        limits: HttpLimits = DEFAULT_LIMITS) -> None:
    server = await start(service, host=host, port=port, prefix=prefix, limits=limits)
    log.info("gpusched extender listening on %s (policy %s)", server.url, service.engine.settings.policy)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
