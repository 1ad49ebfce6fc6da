"""The agent's loop: read, judge, publish, reconcile; wait for XIDs; again.

One pass (`Agent.step`), in order:
1. read every GPU through the `NvmlSource`;
2. update health from the counters; update the metrics;
3. build the annotation (inventory) and hand it to the sink, which writes only changes and
   the heartbeat when due;
4. send events for GPUs that turned unhealthy or came back (best effort: a failed event is
   counted and logged, it does not fail the pass);
5. reconcile the pods' records with the kubelet and NVML (when a cluster writer is given):
   correct whole-GPU records, report new findings as events.
Between passes the loop waits on NVML's event set, not on a timer: an XID from the
unhealthy set, or a GPU falling off the bus, starts a pass at once.

Failures never end the loop (DaemonSet mode): the error is logged as one line, counted in
`gpusched_node_agent_errors_total{reason}`, and the next pass comes after a backoff that
doubles up to a limit. An NVML failure also closes NVML so that the next pass reopens it
(a driver reload leaves stale handles behind), and republishes the GPUs last seen as
unhealthy with the error as the reason (`_publish_blind`). `run_once` is the `--once` path: the same
pass, errors raised to the caller.

Clock (monotonic seconds), wall clock and the stop condition are injected.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

from scheduler.agent.exporter import AgentMetrics
from scheduler.agent.health import GpuHealth, HealthSettings, HealthTracker
from scheduler.agent.inventory import build_entries, encode
from scheduler.agent.nvml_source import NvmlError, NvmlSource
from scheduler.agent.podresources.client import PodResourcesClient, PodResourcesError
from scheduler.agent.proc import ProcessResolver
from scheduler.agent.publisher import ClusterWriter, KubeError
from scheduler.agent.readings import GpuLostEvent, NodeReading, XidEvent
from scheduler.agent.reconcile import PHANTOM, UNACCOUNTED, UNKNOWN_DEVICE, Reconciliation, reconcile
from scheduler.agent.records import record_from_pod
from scheduler.core import contract as c

log = logging.getLogger(__name__)

_EVENT_REASONS = {PHANTOM: "PhantomGPUAllocation", UNACCOUNTED: "UnaccountedGPUUse", UNKNOWN_DEVICE: "UnknownGPUDevice"}


class AnnotationSink(Protocol):
    """Where the node's annotations go: the API server (`publisher.NodePublisher`) or stdout."""

    labels: Mapping[str, str]

    def fetch(self) -> None: ...

    def publish(self, desired: Mapping[str, str], *, now: float, wall: datetime) -> bool: ...


class PrintSink:
    """`--dry-run`: print the `gpusched.io/gpus` value (pretty JSON) whenever it changes."""

    def __init__(self, out: IO[str] = sys.stdout, *, labels: Mapping[str, str] | None = None) -> None:
        self.out = out
        self.labels = dict(labels or {})
        self._last: str | None = None

    def fetch(self) -> None:
        return None

    def publish(self, desired: Mapping[str, str], *, now: float, wall: datetime) -> bool:
        value = desired[c.NODE_GPUS_ANNOTATION]
        if value == self._last:
            return False
        self._last = value
        self.out.write(json.dumps(json.loads(value), indent=2) + "\n")
        self.out.flush()
        return True


@dataclass(frozen=True, slots=True)
class AgentSettings:
    node: str
    interval_s: float = 10.0
    """Time between passes (NVML counters, telemetry, reconciliation); XIDs interrupt it."""
    health: HealthSettings = field(default_factory=HealthSettings)
    phantom_grace_s: float = 120.0
    sharing_strategy: str | None = None
    """Overrides the node label `nvidia.com/gpu.sharing-strategy` (None: read the label)."""
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    wait_chunk_s: float = 5.0
    """The longest single wait on NVML events, i.e. how late a stop request may be noticed."""


class Agent:
    def __init__(self, settings: AgentSettings, *, source: NvmlSource, sink: AnnotationSink, metrics: AgentMetrics,
                 owners: ProcessResolver, mps_probe: Callable[[], bool], clock: Callable[[], float],
                 wall: Callable[[], datetime], writer: ClusterWriter | None = None,
                 kubelet: PodResourcesClient | None = None) -> None:
        self.settings = settings
        self.source, self.sink, self.metrics = source, sink, metrics
        self.owners, self.mps_probe = owners, mps_probe
        self.clock, self.wall = clock, wall
        self.writer, self.kubelet = writer, kubelet
        self.tracker = HealthTracker(settings.health)
        self.entries: list[dict[str, Any]] = []
        self.reconciliation = Reconciliation()
        self._open = False
        self._fetched = False
        self._healthy: dict[str, bool] = {}
        self._findings: set[str] = set()
        self._absent: Mapping[str, float] = {}
        self._kubelet_failing = False
        self._desired: dict[str, str] = {}

    # -- one pass -------------------------------------------------------------------------

    def step(self) -> list[dict[str, Any]]:
        if not self._open:
            self.source.open()
            self._open = True
        if not self._fetched:
            self.sink.fetch()
            self._fetched = True
        reading = self.source.read()
        now = self.clock()
        for gpu in reading.gpus:
            self.tracker.observe_reading(gpu)
        self.tracker.forget(g.uuid for g in reading.gpus)
        health = {g.uuid: self.tracker.health(g.uuid, now) for g in reading.gpus}
        self.metrics.observe(reading, health)
        flips = self._transitions(reading, health)
        label = self.settings.sharing_strategy
        if label is None:
            label = self.sink.labels.get(c.SHARING_STRATEGY_LABEL, "")
        self.entries = build_entries(reading, health=health, mps_daemon=self.mps_probe(), strategy_label=label)
        desired = {c.NODE_GPUS_ANNOTATION: encode(self.entries), c.NODE_DRIVER_ANNOTATION: reading.driver_version,
                   c.NODE_CUDA_ANNOTATION: reading.cuda_version}
        self._desired = desired
        wall = self.wall()
        if self.sink.publish(desired, now=now, wall=wall):
            self.metrics.mark_published(wall.timestamp())
        for reason, message, uuid in flips:
            self._node_event(reason, message, warning=reason == "GPUUnhealthy", key=f"{reason}/{uuid}")
        if self.writer is not None:
            self._reconcile(reading, now)
        return self.entries

    def _transitions(self, reading: NodeReading, health: Mapping[str, GpuHealth]) -> list[tuple[str, str, str]]:
        """Every GPU whose health flipped since the last pass, logged: (event reason, message, GPU UUID)."""
        flips = []
        for g in reading.gpus:
            verdict = health[g.uuid]
            before = self._healthy.get(g.uuid, True)
            self._healthy[g.uuid] = verdict.healthy
            if before == verdict.healthy:
                continue
            if verdict.healthy:
                flips.append(("GPUHealthy", f"GPU {g.index} ({g.uuid}) is healthy again", g.uuid))
                log.info("%s", flips[-1][1])
            else:
                flips.append(("GPUUnhealthy", f"GPU {g.index} ({g.uuid}) is unhealthy: {verdict.reason}", g.uuid))
                log.warning("%s", flips[-1][1])
        return flips

    def _node_event(self, reason: str, message: str, *, warning: bool, key: str) -> None:
        """Events are best effort (as the kubelet's recorder): a failed one is logged and counted,
        and never stops the pass that the annotation and the corrections matter more to."""
        if self.writer is None:
            return
        try:
            self.writer.node_event(reason=reason, message=message, warning=warning, wall=self.wall(), key=key)
        except KubeError as e:
            self.metrics.count_error(e.reason)
            log.warning("event %s not sent: %s", reason, e)

    def _reconcile(self, reading: NodeReading, now: float) -> None:
        assert self.writer is not None
        pods = self.writer.pods()
        records, versions, uids = [], {}, {}
        for pod in pods:
            record = record_from_pod(pod)
            if record is not None:
                records.append(record)
                meta = pod.get("metadata") or {}
                versions[record.key] = meta.get("resourceVersion") or ""
                uids[record.key] = meta.get("uid") or ""
        kubelet = None
        if self.kubelet is not None:
            try:
                kubelet = self.kubelet.list()
                if self._kubelet_failing:
                    log.info("kubelet pod-resources answers again")
                self._kubelet_failing = False
            except PodResourcesError as e:
                self.metrics.count_error(e.reason)
                if not self._kubelet_failing:
                    log.error("%s; record corrections and phantom checks paused", e)
                self._kubelet_failing = True
        owners = {p.pid: self.owners.owner(p.pid) for g in reading.gpus for p in g.processes}
        result = reconcile(gpus=reading.gpus, records=records, kubelet=kubelet, owners=owners, now=now,
                           absent_since=self._absent, grace_s=self.settings.phantom_grace_s)
        if kubelet is not None:  # without an answer the grace clocks neither start nor reset
            self._absent = result.absent_since
        for fix in result.corrections:
            if self.writer.correct_record(namespace=fix.namespace, name=fix.name, value=fix.value,
                                          resource_version=versions.get(fix.key, "")):
                self.metrics.count_corrections(1)
                old = ",".join(fix.old) or "(none)"
                message = f"gpusched.io/gpus corrected to the GPUs the kubelet gave: {fix.value} (was {old})"
                log.warning("pod %s: %s", fix.key, message)
                try:
                    self.writer.pod_event(namespace=fix.namespace, name=fix.name, uid=uids.get(fix.key, ""),
                                          reason="GPURecordCorrected", message=message, wall=self.wall())
                except KubeError as e:
                    self.metrics.count_error(e.reason)
                    log.warning("event GPURecordCorrected not sent: %s", e)
        keys = {f.key for f in result.findings}
        if kubelet is None:  # kubelet-based findings could not be checked: they stand as they were
            keys |= {k for k in self._findings if not k.startswith(UNACCOUNTED)}
        for finding in result.findings:
            if finding.key not in self._findings:
                log.warning("%s", finding.message)
                self._node_event(_EVENT_REASONS[finding.kind], finding.message, warning=True, key=finding.key)
        self._findings = keys
        self.reconciliation = result
        self.metrics.observe_reconciliation(result)

    # -- events between passes ------------------------------------------------------------

    def wait(self, seconds: float, should_stop: Callable[[], bool]) -> None:
        """Wait up to `seconds` for NVML events; return early when one needs a new pass.

        A closed source (after an NVML failure) just sleeps: both sources do when not open.
        """
        deadline = self.clock() + seconds
        while not should_stop():
            left = deadline - self.clock()
            if left <= 0:
                return
            if self._handle(self.source.wait_events(min(left, self.settings.wait_chunk_s))):
                return

    def _handle(self, events: list) -> bool:
        urgent = False
        now = self.clock()
        for event in events:
            if isinstance(event, XidEvent):
                self.metrics.count_xid(event.uuid, event.xid)
                if self.tracker.observe_event(event, now):
                    log.warning("XID %d on GPU %s: marking it unhealthy", event.xid, event.uuid)
                    urgent = True
                else:
                    log.info("XID %d on GPU %s (not in the unhealthy set)", event.xid, event.uuid)
            elif isinstance(event, GpuLostEvent):
                log.error("NVML reports a GPU lost %s", event.uuid or "(which one: next read)")
                urgent = True
        return urgent

    # -- the two modes --------------------------------------------------------------------

    def run_once(self) -> list[dict[str, Any]]:
        """`--once`: one pass; errors go to the caller."""
        try:
            return self.step()
        finally:
            self.close()

    def run_forever(self, should_stop: Callable[[], bool]) -> None:
        backoff = self.settings.backoff_initial_s
        while not should_stop():
            try:
                self.step()
                backoff = self.settings.backoff_initial_s
                pause = self.settings.interval_s
            except (NvmlError, KubeError) as e:
                self.metrics.count_error(e.reason)
                log.error("%s; retrying in %.0fs", e, backoff)
                if isinstance(e, NvmlError):
                    self.close()
                    self._publish_blind(e)
                pause = backoff
                backoff = min(backoff * 2, self.settings.backoff_max_s)
            self.wait(pause, should_stop)
        self.close()

    def _publish_blind(self, error: NvmlError) -> None:
        """NVML failed: the GPUs last seen are published unhealthy, with the error as the reason.

        Saying so at once (and keeping the heartbeat) beats going silent: the node stops taking
        GPU pods now, with a reason an operator can act on, instead of after the staleness
        limit as "agent silent". A node never read before has nothing to publish.
        """
        if not self._desired:
            return
        reason = f"the agent cannot read NVML: {error}"
        blind = [{**entry, "healthy": False, "unhealthyReason": reason} for entry in self.entries]
        desired = {**self._desired, c.NODE_GPUS_ANNOTATION: encode(blind)}
        try:
            if self.sink.publish(desired, now=self.clock(), wall=self.wall()):
                self.metrics.mark_published(self.wall().timestamp())
        except KubeError as e:
            self.metrics.count_error(e.reason)
            log.error("%s", e)
        # The next good pass announces every GPU as healthy again: make that true.
        self._healthy = dict.fromkeys(self._healthy, False)

    def close(self) -> None:
        if self._open:
            self.source.close()
            self._open = False
