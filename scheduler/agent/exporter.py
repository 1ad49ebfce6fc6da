"""The agent's Prometheus metrics (`gpusched_node_gpu_*`, `gpusched_node_agent_*`).

One collector renders everything from the latest snapshot at scrape time (the way
dcgm-exporter does): a GPU that disappears takes its series with it instead of leaving a
frozen last value, and a scrape never sees half an update (one lock).

Per GPU, labelled `node`, `gpu` (index), `uuid`, `model`:
    gpusched_node_gpu_memory_used_bytes, gpusched_node_gpu_memory_total_bytes,
    gpusched_node_gpu_utilization_ratio (0..1), gpusched_node_gpu_temperature_celsius,
    gpusched_node_gpu_power_watts, gpusched_node_gpu_healthy (1/0),
    gpusched_node_gpu_xid_errors_total{xid} (every XID seen, not only the unhealthy set),
    gpusched_node_gpu_unaccounted_processes
Per node, labelled `node`:
    gpusched_node_agent_errors_total{reason}, gpusched_node_agent_phantom_allocations,
    gpusched_node_agent_record_corrections_total, gpusched_node_agent_last_publish_timestamp_seconds,
    gpusched_node_agent_info{driver_version, cuda_version}
A value NVML does not give for a GPU (None) is left out, not exported as 0.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.agent.health import GpuHealth
from scheduler.agent.inventory import gfd_product
from scheduler.agent.readings import NodeReading
from scheduler.agent.reconcile import PHANTOM, UNACCOUNTED, Reconciliation

MIB = 1024 * 1024
ERROR_REASONS = ("nvml", "nvml-unavailable", "kube-api", "pod-resources")
"""Pre-created at 0 so that `rate()` and `increase()` work from the first scrape."""

_GPU_LABELS = ("node", "gpu", "uuid", "model")


class AgentMetrics(Collector):
    """Fed by the runner, read by the HTTP server's thread."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._reading: NodeReading | None = None
        self._health: Mapping[str, GpuHealth] = {}
        self._xids: Counter[tuple[str, int]] = Counter()
        self._errors: Counter[str] = Counter(dict.fromkeys(ERROR_REASONS, 0))
        self._corrections = 0
        self._phantoms = 0
        self._unaccounted: Counter[str] = Counter()
        self._last_publish: float | None = None

    # -- fed by the runner ----------------------------------------------------------------

    def observe(self, reading: NodeReading, health: Mapping[str, GpuHealth]) -> None:
        with self._lock:
            self._reading, self._health = reading, dict(health)

    def count_xid(self, uuid: str, xid: int) -> None:
        with self._lock:
            self._xids[(uuid, xid)] += 1

    def count_error(self, reason: str) -> None:
        with self._lock:
            self._errors[reason] += 1

    def count_corrections(self, n: int) -> None:
        with self._lock:
            self._corrections += n

    def observe_reconciliation(self, result: Reconciliation) -> None:
        with self._lock:
            self._phantoms = result.count(PHANTOM)
            self._unaccounted = Counter({f.gpu: f.count for f in result.findings if f.kind == UNACCOUNTED and f.gpu})

    def mark_published(self, wall_time: float) -> None:
        with self._lock:
            self._last_publish = wall_time

    def errors(self, reason: str) -> int:
        with self._lock:
            return self._errors[reason]

    def xid_count(self, uuid: str, xid: int) -> int:
        with self._lock:
            return self._xids[(uuid, xid)]

    # -- read at scrape time --------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            yield from self._gpu_metrics()
            yield from self._agent_metrics()

    def _gpu_metrics(self) -> Iterable[Metric]:
        fams = {
            "memory_used": GaugeMetricFamily("gpusched_node_gpu_memory_used_bytes", "GPU memory in use",
                                             labels=_GPU_LABELS),
            "memory_total": GaugeMetricFamily("gpusched_node_gpu_memory_total_bytes", "GPU memory in all",
                                              labels=_GPU_LABELS),
            "util": GaugeMetricFamily("gpusched_node_gpu_utilization_ratio",
                                      "Fraction of the last sample period a kernel ran (NVML utilization.gpu)",
                                      labels=_GPU_LABELS),
            "temp": GaugeMetricFamily("gpusched_node_gpu_temperature_celsius", "GPU core temperature",
                                      labels=_GPU_LABELS),
            "power": GaugeMetricFamily("gpusched_node_gpu_power_watts", "GPU board power draw", labels=_GPU_LABELS),
            "healthy": GaugeMetricFamily("gpusched_node_gpu_healthy",
                                         "1 when the GPU is published healthy, 0 when not", labels=_GPU_LABELS),
            "unaccounted": GaugeMetricFamily("gpusched_node_gpu_unaccounted_processes",
                                             "Processes on the GPU that no pod record explains", labels=_GPU_LABELS),
        }
        xids = CounterMetricFamily("gpusched_node_gpu_xid_errors", "XID errors NVML reported",
                                   labels=(*_GPU_LABELS, "xid"))
        known: dict[str, list[str]] = {}
        for g in self._reading.gpus if self._reading else ():
            labels = [self.node, str(g.index), g.uuid, gfd_product(g.name)]
            known[g.uuid] = labels
            t = g.telemetry
            fams["memory_total"].add_metric(labels, g.memory_total_mib * MIB)
            if t.memory_used_mib is not None:
                fams["memory_used"].add_metric(labels, t.memory_used_mib * MIB)
            if t.utilization_pct is not None:
                fams["util"].add_metric(labels, t.utilization_pct / 100)
            if t.temperature_c is not None:
                fams["temp"].add_metric(labels, t.temperature_c)
            if t.power_mw is not None:
                fams["power"].add_metric(labels, t.power_mw / 1000)
            verdict = self._health.get(g.uuid)
            fams["healthy"].add_metric(labels, 1.0 if verdict is None or verdict.healthy else 0.0)
            fams["unaccounted"].add_metric(labels, self._unaccounted.get(g.uuid, 0))
        for (uuid, xid), count in sorted(self._xids.items()):
            labels = known.get(uuid)
            if labels is not None:
                xids.add_metric([*labels, str(xid)], count)
        yield from fams.values()
        yield xids

    def _agent_metrics(self) -> Iterable[Metric]:
        errors = CounterMetricFamily("gpusched_node_agent_errors", "Errors the agent retried after, by cause",
                                     labels=("node", "reason"))
        for reason, count in sorted(self._errors.items()):
            errors.add_metric([self.node, reason], count)
        yield errors
        corrections = CounterMetricFamily("gpusched_node_agent_record_corrections",
                                          "Pod gpusched.io/gpus records rewritten to the devices the kubelet gave",
                                          labels=("node",))
        corrections.add_metric([self.node], self._corrections)
        yield corrections
        phantoms = GaugeMetricFamily("gpusched_node_agent_phantom_allocations",
                                     "Recorded pods the kubelet does not run", labels=("node",))
        phantoms.add_metric([self.node], self._phantoms)
        yield phantoms
        if self._last_publish is not None:
            last = GaugeMetricFamily("gpusched_node_agent_last_publish_timestamp_seconds",
                                     "When the node annotations were last written (heartbeat included)",
                                     labels=("node",))
            last.add_metric([self.node], self._last_publish)
            yield last
        if self._reading is not None:
            info = GaugeMetricFamily("gpusched_node_agent_info", "NVIDIA driver and CUDA versions on the node",
                                     labels=("node", "driver_version", "cuda_version"))
            info.add_metric([self.node, self._reading.driver_version, self._reading.cuda_version], 1)
            yield info


def registry_for(metrics: AgentMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


def serve(metrics: AgentMetrics, *, port: int, addr: str = "127.0.0.1"):
    """Serve `/metrics` on a daemon thread; returns the server (`.server_port`, `.shutdown()`).
    Plain HTTP: bind it to an address only its scrapers reach (loopback, or the pod IP)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry_for(metrics))
    return server
