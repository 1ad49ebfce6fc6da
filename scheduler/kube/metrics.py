"""Prometheus metrics of the Kubernetes adapter, on the extender's registry (prefix `gpusched_`).

Counters are bumped by the adapter's hooks (API calls, watch restarts, evictions); gauges are read
from the cache at scrape time, so they show what /state shows. deploy/components/monitoring's
alerts and dashboard use these names (a test keeps them in step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.core.quantity import QuantityError, to_integer
from scheduler.core.staleness import heartbeat_reason
from scheduler.kube.cache import ClusterCache

QUOTA_RESOURCES = ("requests.nvidia.com/gpu", "requests.gpusched.io/gpu-milli")


class KubeMetrics:
    def __init__(self, registry: CollectorRegistry, cache: ClusterCache, *, synced: Callable[[], bool],
                 leader: Callable[[], bool | None], clock: Callable[[], datetime]) -> None:
        self.api_calls = Counter("gpusched_kube_api_calls_total", "Kubernetes API calls, by operation and HTTP code "
                                 "(0: no answer).", ["operation", "code"], registry=registry)
        self.watch_restarts = Counter("gpusched_kube_watch_restarts_total",
                                      "Watches restarted, by kind and cause (expired: relisted; dropped: resumed).",
                                      ["kind", "cause"], registry=registry)
        self.requeued = Counter("gpusched_pods_requeued_total",
                                "Pods kube-scheduler parked after an error, nudged back to its queue (kube/requeue.py).",
                                registry=registry)
        self.reservation_writes = Counter("gpusched_reservation_writes_total",
                                          "Gang reservation annotations written onto pending members, by result.",
                                          ["result"], registry=registry)
        self.evictions = Counter("gpusched_evictions_total", "Evictions requested by the reclaimer, by result.",
                                 ["result"], registry=registry)
        registry.register(_CacheCollector(cache, synced, leader, clock))

    def api_call(self, operation: str, code: int) -> None:
        self.api_calls.labels(operation, str(code)).inc()

    def watch_restart(self, kind: str, cause: str) -> None:
        self.watch_restarts.labels(kind, cause).inc()


class _CacheCollector(Collector):
    def __init__(self, cache: ClusterCache, synced: Callable[[], bool], leader: Callable[[], bool | None],
                 clock: Callable[[], datetime]) -> None:
        self.cache, self.synced, self.leader, self.clock = cache, synced, leader, clock

    def describe(self):
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("gpusched_kube_synced", "1 once the first full list of every kind is in the books.",
                                value=1.0 if self.synced() else 0.0)
        leader = self.leader()
        if leader is not None:
            yield GaugeMetricFamily("gpusched_leader", "1 while this replica holds the reclaimer's Lease.",
                                    value=1.0 if leader else 0.0)
        now = self.clock()
        staleness = self.cache.settings.staleness
        stale = sum(1 for name, beat in self.cache.heartbeats().items()
                    if heartbeat_reason(beat, now=now, staleness=staleness, node=name))
        yield GaugeMetricFamily("gpusched_nodes_agent_stale", "Nodes whose gpusched agent heartbeat is stale.",
                                value=float(stale))
        yield GaugeMetricFamily("gpusched_untrusted_records", "Bound pods whose gpusched.io/gpus record is not "
                                "counted: gpusched's binder did not write it (/state kube.untrustedRecords says why).",
                                value=float(len(self.cache.untrusted)))
        used = GaugeMetricFamily("gpusched_namespace_quota_used", "GPU quota used (ResourceQuota status.used).",
                                 labels=["namespace", "resource"])
        hard = GaugeMetricFamily("gpusched_namespace_quota_hard", "GPU quota (ResourceQuota spec.hard).",
                                 labels=["namespace", "resource"])
        for (namespace, _name), quota in sorted(self.cache.quotas.items()):
            for resource in QUOTA_RESOURCES:
                if resource not in quota["hard"]:
                    continue
                label = resource.removeprefix("requests.")
                hard.add_metric([namespace, label], _number(quota["hard"][resource]))
                used.add_metric([namespace, label], _number(quota["used"].get(resource, "0")))
        yield used
        yield hard


def _number(value: object) -> float:
    try:
        return float(to_integer(value))
    except QuantityError:
        return float("nan")
