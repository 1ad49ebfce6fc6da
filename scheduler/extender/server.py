"""Assembling and running an extender: from a cluster file (and state journal) to a listening app."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from aiohttp import web

from scheduler.clusterfile import ClusterSpec
from scheduler.configfile import GatesConfig
from scheduler.core.engine import Engine, EngineSettings
from scheduler.extender.app import create_app
from scheduler.extender.journal_keeper import JournalKeeper
from scheduler.extender.service import ExtenderService, MemoryBinder
from scheduler.extender.slow_clients import DEFAULT_LIMITS, HttpLimits
from scheduler.extender.statefile import StateJournal
from scheduler.extender.stop_signals import until_stop_signal

log = logging.getLogger(__name__)


def cluster_service(spec: ClusterSpec, *, settings: EngineSettings | None = None,
                    journal: StateJournal | None = None, decide_in_filter: bool = False,
                    gates: GatesConfig | None = None,
                    clock: Callable[[], float] | None = time.time) -> ExtenderService:
    """An extender over a static cluster: the file's running pods, then the journal's record.

    `gates` configures teams and gangs; `clock` times gang reservations (wall time by default, so
    deadlines recorded in the state file stay meaningful across restarts; None: the time a
    simulation last gave, `simulated_time`).
    """
    engine = cluster_engine(spec, settings=settings, gates=gates, clock=clock)
    service = ExtenderService(engine, binder=MemoryBinder(journal), decide_in_filter=decide_in_filter)
    if journal is not None:
        keeper = JournalKeeper(engine, journal)
        keeper.restore(_restore)
        service.keeper = keeper
    return service


def cluster_engine(spec: ClusterSpec, *, settings: EngineSettings | None = None, gates: GatesConfig | None = None,
                   clock: Callable[[], float] | None = time.time) -> Engine:
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


def listen(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on host:port now, before anything else starts (as aiohttp would: every
    address the host resolves to, SO_REUSEADDR). `serve --state-file` binds its port before it
    touches the state file, so a second server on a busy port exits without rewriting it.
    Raises OSError ("address already in use"); sockets bound so far are closed.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            if port == 0:  # every address on the one port the kernel picked first
                port = sock.getsockname()[1]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def start(service: ExtenderService, *, host: str = "127.0.0.1", port: int = 0, prefix: str = "",
                extra_routes: Sequence = (), sockets: Sequence[socket.socket] = (),
                limits: HttpLimits = DEFAULT_LIMITS, release_verb: bool = True,
                simulated_time: bool = False) -> RunningServer:
    """Listen on host:port (0 picks a free port), or on `sockets` already bound, and return the base
    URL. `release_verb`, `simulated_time`: `create_app`'s."""
    app = create_app(service, prefix=prefix, limits=limits, release_verb=release_verb, simulated_time=simulated_time)
    for add in extra_routes:
        add(app)
    runner = web.AppRunner(app, access_log=None, **limits.runner_options())
    await runner.setup()
    if sockets:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        bound = sockets[0].getsockname()[1]
    else:
        site = web.TCPSite(runner, host, port)
        await site.start()
        listening = site._server.sockets if site._server else []  # the bound port when port=0
        bound = listening[0].getsockname()[1] if listening else port
    prefix_path = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return RunningServer(runner, f"http://{host}:{bound}{prefix_path}")


async def serve_forever(service: ExtenderService, *, host: str, port: int, prefix: str = "",
                        sockets: Sequence[socket.socket] = (), limits: HttpLimits = DEFAULT_LIMITS,
                        simulated_time: bool = False) -> None:
    server = await start(service, host=host, port=port, prefix=prefix, sockets=sockets, limits=limits,
                         simulated_time=simulated_time)
    log.info("gpusched extender listening on %s (policy %s)", server.url, service.engine.settings.policy)
    try:
        await until_stop_signal()
    finally:
        await server.close()
