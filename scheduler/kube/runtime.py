"""`gpusched serve --kubeconfig | --in-cluster`: the extender over a live cluster, assembled.

Start, in this order (each step waits for the previous one):
  1. the public listener (webhook, probes, metrics): `/healthz` answers, `/readyz` says 503;
  2. list every kind (`KubeSync.start`): the books are rebuilt from the objects, pod annotations
     included, exactly as they were before a restart;
  3. the verbs' listener opens, then `/readyz` says 200, in that order: a probe that says ready
     finds the verbs answering (kube-scheduler's calls before this fail as connection errors,
     which it retries, and `requeue` nudges: nothing is decided on half a picture);
  4. background: the watches, the heartbeat sweep, the Lease election and the reclaimer, the
     webhook certificate reloader.
`stop()` undoes it, giving the Lease up so another replica takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from scheduler.configfile import GatesConfig
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.staleness import DEFAULT_STALENESS
from scheduler.extender import wire
from scheduler.extender.public import start_public
from scheduler.extender.server import RunningServer, start
from scheduler.extender.service import ExtenderService
from scheduler.extender.slow_clients import HttpLimits
from scheduler.extender.stop_signals import until_stop_signal
from scheduler.extender.tls import CertificateReloader, server_context
from scheduler.extender.webhook import WebhookSettings
from scheduler.kube.binder import BinderSettings, KubeBinder
from scheduler.kube.cache import CacheSettings, ClusterCache
from scheduler.kube.client import KubeClient
from scheduler.kube.events import WARNING, EventRecorder, PodRef
from scheduler.kube.gatefeed import GateFeed, victims
from scheduler.kube.leader import LeaderElector, LeaseSettings
from scheduler.kube.metrics import KubeMetrics
from scheduler.kube.reclaimer import Reclaimer, Victim
from scheduler.kube.requeue import Requeuer
from scheduler.kube.reservation_writer import ReservationWriter
from scheduler.kube.sync import KubeSync, SyncSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubeServeSettings:
    scheduler_name: str = "gpu-scheduler"
    host: str = "127.0.0.1"
    port: int = 8888
    prefix: str = ""
    webhook_host: str = "0.0.0.0"
    webhook_port: int | None = None
    """None: no public listener (no webhook, probes or metrics off loopback)."""
    tls_cert: str = ""
    tls_key: str = ""
    share_runtime_class: str = ""
    staleness: timedelta = DEFAULT_STALENESS
    lease: LeaseSettings | None = None
    """None: no election; this replica never evicts."""
    reclaim_interval_s: float = 10.0
    identity: str = "gpusched"
    decide_in_filter: bool = False
    sync: SyncSettings = field(default_factory=SyncSettings)
    binder: BinderSettings = field(default_factory=BinderSettings)
    http: HttpLimits = field(default_factory=HttpLimits)
    """Body and idle deadlines of both listeners (slow clients are cut off)."""


class KubeExtender:
    """One gpusched replica: engine, cache, watches, binder, webhook, election, reclaimer."""

    def __init__(self, client: KubeClient, *, settings: KubeServeSettings = KubeServeSettings(),
                 engine_settings: EngineSettings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 plan: Callable[[], Sequence[Victim]] | None = None, gates: GatesConfig | None = None) -> None:
        """`plan`: what the reclaimer evicts (default: the core's reclaim plan and broken gangs)."""
        self.client = client
        self.settings = settings
        gates = gates or GatesConfig()
        self.engine = Engine(settings=replace(engine_settings or EngineSettings(), gangs=gates.gangs),
                             clock=time.time, quotas=gates.quotas)
        for group in gates.pod_groups:
            self.engine.gates.set_pod_group(group.namespace, group.name, group.min_member)
        plan = plan or (lambda: victims(self.engine))
        self.events = EventRecorder(client, instance=settings.identity, clock=clock)
        self.binder = KubeBinder(client, events=self.events, settings=settings.binder)
        self.service = ExtenderService(self.engine, binder=self.binder, ready=False,
                                       decide_in_filter=settings.decide_in_filter)
        self.cache = ClusterCache(self.engine, clock=clock, settings=CacheSettings(
            scheduler_name=settings.scheduler_name, staleness=settings.staleness))
        self.cache.on_change.append(GateFeed(self.engine, self.cache).changed)
        self.sync = KubeSync(client, self.cache, settings=settings.sync)
        self.elector = LeaderElector(client, settings.lease) if settings.lease else None
        self.metrics = KubeMetrics(self.service.metrics.registry, self.cache, synced=self.sync.synced.is_set,
                                   leader=lambda: self.elector.is_leader if self.elector else None, clock=clock)
        for reflector in self.sync.reflectors:
            reflector.on_restart = self.metrics.watch_restart
        client.on_call.append(self.metrics.api_call)
        self.reclaimer = Reclaimer(client, plan=plan, is_leader=self.is_leader, events=self.events,
                                   interval_s=settings.reclaim_interval_s,
                                   on_result=lambda r: self.metrics.evictions.labels(r).inc(),
                                   terminating=self._terminating,
                                   on_freed=self._requeue_soon)
        # Gang reservations go onto their pods (durable, and parked members requeued); binds wait for them.
        self.engine.gates.journal.enabled = True
        self.reservations = ReservationWriter(client)
        self.service.keeper = self.reservations
        self.binder.before_commit.append(self.reservations.settled)
        self.requeuer = Requeuer(client, self.cache, may_write=lambda: self.elector is None or self.is_leader())
        self.requeuer.on_nudge.append(self.metrics.requeued.inc)
        self.reservations.on_result.append(lambda result: self.metrics.reservation_writes.labels(result).inc())
        self.service.extra_state.append(self.cache.state_section)
        self.service.on_bind_refused.append(self._bind_refused)
        self.verbs: RunningServer | None = None
        self.public: RunningServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._nudges: set[asyncio.Task] = set()

    def is_leader(self) -> bool:
        return self.elector is not None and self.elector.is_leader

    async def start(self) -> None:
        s = self.settings
        if s.webhook_port is not None:
            context = server_context(s.tls_cert, s.tls_key) if s.tls_cert else None
            self.public = await start_public(
                self.service, webhook=WebhookSettings(scheduler_name=s.scheduler_name,
                                                      share_runtime_class=s.share_runtime_class),
                host=s.webhook_host, port=s.webhook_port, ssl_context=context, limits=s.http)
            if context is not None:
                self._spawn(CertificateReloader(context, s.tls_cert, s.tls_key).run(), "tls-reloader")
        await self.sync.start()
        self.verbs = await start(self.service, host=s.host, port=s.port, prefix=s.prefix, limits=s.http,
                                 release_verb=False)  # the pod watch releases
        self.service.ready = True  # only now: ready means kube-scheduler's calls are answered
        log.info("gpusched extender for %s listening on %s (policy %s)", s.scheduler_name, self.verbs.url,
                 self.engine.settings.policy)
        self._spawn(self.requeuer.run(), "requeue")
        if self.elector is not None:
            self._spawn(self.elector.run(), "leader-election")
            self._spawn(self.reclaimer.run(), "reclaimer")

    async def stop(self) -> None:
        self.service.ready = False
        for server in (self.verbs, self.public):
            if server is not None:
                await server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.reservations.close()
        await self.sync.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.events.drain(), 2.0)
        self.client.close()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await until_stop_signal()
        finally:
            await self.stop()

    def _spawn(self, coroutine, name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    def _requeue_soon(self, pod: str) -> None:
        """Nudge `pod` without waiting for it; the task is kept only until it is done."""
        task = asyncio.create_task(self.requeuer.nudge(pod), name=f"requeue {pod}")
        self._nudges.add(task)
        task.add_done_callback(self._nudges.discard)

    def _terminating(self, uid: str) -> bool:
        record = self.cache.pods.get(uid)
        return record is not None and record.deleting and record.phase not in ("Succeeded", "Failed")

    def _bind_refused(self, args: wire.BindingArgs, reason: str) -> None:
        self.events.emit(PodRef(args.pod_namespace, args.pod_name, args.pod_uid), WARNING, "FailedScheduling",
                         f"gpusched refused to bind to {args.node}: {reason}")
