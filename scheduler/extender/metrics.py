"""Prometheus metrics of one extender (prefix `gpusched_`), on a registry of its own.

Request counters are updated by the handlers; allocation gauges are computed from the engine's
books at scrape time, so they can never drift from what `/state` shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.core.engine import Engine
from scheduler.core.gangs import Phase
from scheduler.core.quotas import Standing
from scheduler.core.reclaim_plans import current_plans

OTHER_TEAMS = "other"
"""The `team` label of every team nobody declared (a pod label or a namespace name): the series
of a metric are bounded by the teams configured or derived from ResourceQuotas, not by what
pod authors write."""
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ExtenderMetrics:
    def __init__(self, engine_of: Callable[[], Engine]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("gpusched_extender_request_duration_seconds",
                                 "Time to answer one extender call, by verb.", ["verb"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.bad_requests = Counter("gpusched_extender_bad_requests_total",
                                    "Requests answered 400 (malformed body), by verb.", ["verb"], registry=self.registry)
        self.pods_bound = Counter("gpusched_pods_bound_total", "Pods bound by the extender.", registry=self.registry)
        self.bind_failures = Counter("gpusched_bind_failures_total", "Binds refused or failed, by cause.", ["cause"],
                                     registry=self.registry)
        self.bind_late = Counter("gpusched_bind_late_total",
                                 "Binds answered after kube-scheduler's extender httpTimeout: it saw a timeout.",
                                 registry=self.registry)
        self.rejections = Counter("gpusched_filter_rejections_total",
                                  "Nodes rejected by the filter, by reason.", ["reason"], registry=self.registry)
        self.preempt_victims_dropped = Counter(
            "gpusched_preempt_victims_dropped_total",
            "Victims kube-scheduler proposed that would free no GPU capacity the preemptor can use.",
            registry=self.registry)
        self.rehearsals = Histogram("gpusched_policy_rehearsal_seconds",
                                    "fgd-plus's rehearsals played off the scheduling path, by the order they chose "
                                    "(terms or fgd): how long each took.", ["chose"],
                                    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=self.registry)
        self.registry.register(_BooksCollector(engine_of))
        self.registry.register(_GatesCollector(engine_of))


class _BooksCollector(Collector):
    """Allocation gauges from the engine's arrays: GPUs and milli-GPU allocated per model."""

    def __init__(self, engine_of: Callable[[], Engine]) -> None:
        self._engine_of = engine_of

    def describe(self):
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._engine_of().state
        rows = state.live_rows()
        whole = GaugeMetricFamily("gpusched_gpus_allocated", "GPUs fully allocated, per model.", labels=["model"])
        milli = GaugeMetricFamily("gpusched_gpu_milli_allocated", "Allocated GPU compute in milli-GPU, per model.",
                                  labels=["model"])
        capacity = GaugeMetricFamily("gpusched_gpu_milli_capacity", "GPU compute capacity in milli-GPU, per model.",
                                     labels=["model"])
        shared = GaugeMetricFamily("gpusched_gpus_shared", "GPUs holding shares (partly allocated), per model.",
                                   labels=["model"])
        present = state.present[rows]
        model = state.model_id[rows]
        used = np.where(present, 1000 - state.free_milli[rows], 0)
        for mid, name in enumerate(state.models):
            sel = present & (model == mid)
            if not sel.any():
                continue
            u = used[sel]
            whole.add_metric([name], float((u == 1000).sum()))
            shared.add_metric([name], float(((u > 0) & (u < 1000)).sum()))
            milli.add_metric([name], float(u.sum()))
            capacity.add_metric([name], float(sel.sum() * 1000))
        yield from (whole, shared, milli, capacity)
        pods = GaugeMetricFamily("gpusched_pods_allocated", "Pods holding an allocation in the books.")
        pods.add_metric([], float(len(self._engine_of().allocations)))
        yield pods


class _GatesCollector(Collector):
    """Team quotas, gangs and reclaim, from the gatekeeper's books at scrape time."""

    def __init__(self, engine_of: Callable[[], Engine]) -> None:
        self._engine_of = engine_of

    def describe(self):
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gates = self._engine_of().gates
        unit = gates.quotas.config.unit.value
        families = {name: GaugeMetricFamily(f"gpusched_team_{name}_milli",
                                            f"Team {text}, in thousandths of a quota unit ({unit}).", labels=["team"])
                    for name, text in (("guaranteed", "guarantee"), ("max", "max (absent: unlimited)"),
                                       ("used", "usage: allocated plus reserved"), ("reserved", "reserved usage"),
                                       ("borrowed", "usage above its guarantee"))}
        for name, row in _team_rows(gates.quotas.standings(gates.quotas.capacity(gates.state)).values()).items():
            for family, value in row.items():
                if value is not None:
                    families[family].add_metric([name], value)
        yield from families.values()
        gangs = GaugeMetricFamily("gpusched_gangs", "Gangs by phase: waiting (pending), reserved, complete (bound), "
                                  "broken.", labels=["phase"])
        phases = {p: 0 for p in Phase}
        for gang in gates.gangs:
            phases[gates.gangs.phase(gang)] += 1
        for phase, count in phases.items():
            gangs.add_metric([phase.value], count)
        yield gangs
        events = CounterMetricFamily("gpusched_gang_reservations", "Gang reservations made, and how they ended: "
                                     "complete, expired (timed out), invalidated.", labels=["event"])
        for event in ("reserved", "complete", "expired", "invalidated"):
            events.add_metric([event], gates.stats[event])
        yield events
        broken = CounterMetricFamily("gpusched_gangs_broken", "Gangs whose reservation ended after some members "
                                     "were bound (those members are listed for eviction).")
        broken.add_metric([], gates.stats["broken"])
        yield broken
        victims = GaugeMetricFamily("gpusched_reclaim_evictions_proposed",
                                    "Pods the current reclaim plan would evict for teams under their guarantee.")
        victims.add_metric([], sum(len(p.uids) for p in current_plans(gates)))
        yield victims


def _team_rows(standings: Iterable[Standing]) -> dict[str, dict[str, int | None]]:
    """Label -> values of the team families: declared teams by name, the rest summed as `other`
    (a declared team named `other` is summed with them)."""
    rows: dict[str, dict[str, int | None]] = {}
    for s in standings:
        declared = s.team.source != "default"
        name = s.team.name if declared else OTHER_TEAMS
        row = rows.setdefault(name, {"guaranteed": 0, "max": None, "used": 0, "reserved": 0, "borrowed": 0})
        row["guaranteed"] = (row["guaranteed"] or 0) + s.team.guaranteed_milli
        if declared and s.team.max_milli is not None:
            row["max"] = (row["max"] or 0) + s.team.max_milli
        for family, value in (("used", s.used_milli), ("reserved", s.reserved_milli),
                              ("borrowed", s.borrowed_milli)):
            row[family] = (row[family] or 0) + value
    return rows
