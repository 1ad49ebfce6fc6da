"""What a time-driven replay measures, recorded as it runs and summarised at the end.

- a timeline, sampled after every event time's scheduling pass: GPU allocation (% of all GPUs),
  fragmentation against the scenario's typical pods (% of all GPUs), pending and running pods,
  unhealthy GPUs, and per team the GPUs in use and the part of it borrowed above its guarantee
- per pod: submit, start, end, node, evictions; per job: submit, all pods running, finished
- summaries: queueing delay by team and by job size (p50/p95), job completion time, gang wait
  (submit until every member runs), quota use and borrowing per team, evictions by cause

Time-weighted means treat the timeline as a step function between samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from scheduler.core.allocation import Allocation
from simulator.cluster_view import ClusterView
from simulator.frag_tracker import FragmentationTracker
from simulator.scenario import JobSpec, Scenario


@dataclass
class PodRecord:
    uid: str
    job: str
    team: str
    milli: int
    submit_s: float
    attempt: int = 0
    start_s: float | None = None
    end_s: float | None = None
    node: str = ""
    evicted: str = ""
    """Why this attempt ended early ("gpu-failure", "reclaim"), or ""."""


@dataclass
class JobRecord:
    spec: JobSpec
    started_s: float | None = None
    """When the last pod of the (latest) attempt started (for a gang: when the gang was running)."""
    finished_s: float | None = None
    evictions: int = 0
    started: set[str] = field(default_factory=set)
    done: int = 0


TIMELINE_COLUMNS = ("time_s", "allocated_pct", "fragment_pct", "pending_pods", "running_pods", "unhealthy_gpus")


class Recorder:
    def __init__(self, scenario: Scenario, view: ClusterView) -> None:
        self.scenario = scenario
        self.view = view
        self.teams = scenario.team_names
        self.guaranteed = {t.name: t.guaranteed_gpus * 1000 for t in scenario.teams}
        self.tracker = FragmentationTracker(view.state, scenario.typical_workload())
        self.pods: dict[str, PodRecord] = {}
        self.jobs: dict[str, JobRecord] = {j.name: JobRecord(j) for j in scenario.jobs}
        self.timeline: list[tuple] = []
        self.team_usage: list[tuple] = []
        self.evictions: Counter[tuple[str, str]] = Counter()
        self.attempts = 0
        self.skipped = 0
        """Scheduling attempts answered from an identical pod's failure in the same pass (see replay)."""

    # ----------------------------------------------------------------- events
    def submitted(self, job: JobSpec, pods: Iterable, t: float, attempt: int) -> None:
        for pod in pods:
            self.pods[pod.uid] = PodRecord(pod.uid, job.name, job.team, pod.total_milli, t, attempt)

    def started(self, alloc: Allocation, job: JobSpec, t: float) -> None:
        record = self.pods[alloc.uid]
        record.start_s, record.node = t, alloc.node
        jr = self.jobs[job.name]
        jr.started.add(alloc.uid)
        if len(jr.started) == job.width and jr.started_s is None:
            jr.started_s = t

    def ended(self, uid: str, t: float, *, evicted: str = "") -> None:
        record = self.pods[uid]
        record.end_s, record.evicted = t, evicted
        jr = self.jobs[record.job]
        if evicted:
            self.evictions[(record.team, evicted)] += 1
        else:
            jr.done += 1
            if jr.done == jr.spec.width:
                jr.finished_s = t

    def restarted(self, job: JobSpec) -> None:
        jr = self.jobs[job.name]
        jr.evictions += 1
        jr.started_s, jr.done = None, 0
        jr.started.clear()

    def sample(self, t: float, *, pending: int, running: int) -> None:
        self.tracker.update()
        capacity = max(1, self.view.capacity_milli)
        s = self.view.state
        unhealthy = int((s.present[:s.size] & ~s.healthy[:s.size]).sum())
        row = (t, 100.0 * self.view.allocated_milli / capacity, 100.0 * self.tracker.amount_milli / capacity,
               pending, running, unhealthy)
        if self.timeline and self.timeline[-1][0] == t:
            self.timeline[-1] = row
            self.team_usage.pop()
        else:
            self.timeline.append(row)
        used: Counter[str] = Counter()
        for alloc in self.view.bound.values():
            team = self.pods[alloc.uid].team if alloc.uid in self.pods else alloc.team
            used[team] += alloc.gpu_milli_total
        borrowed = borrowed_by_team(used, self.guaranteed, quotas=bool(self.scenario.teams))
        self.team_usage.append((t, *(used[team] / 1000 for team in self.teams),
                                *(borrowed.get(team, 0) / 1000 for team in self.teams)))

    def detach(self) -> None:
        """Drop the cluster view and fragmentation tracker: the run is over, only its records are kept."""
        self.view = None  # type: ignore[assignment]
        self.tracker = None  # type: ignore[assignment]

    # -------------------------------------------------------------- summaries
    def summary(self) -> dict:
        jobs = list(self.jobs.values())
        started = [j for j in jobs if j.started_s is not None]
        delays = {j.spec.name: j.started_s - j.spec.submit_s for j in started}
        out: dict = {
            "jobs": len(jobs), "pods": sum(j.spec.width for j in jobs),
            "jobs_completed": sum(1 for j in jobs if j.finished_s is not None),
            "jobs_never_started": sum(1 for j in jobs if j.started_s is None),
            "scheduling_attempts": self.attempts, "attempts_answered_from_identical_pods": self.skipped,
            "makespan_s": round(self.timeline[-1][0] - self.timeline[0][0], 1) if self.timeline else 0.0,
            "gpu_allocation_pct": self._level(1),
            "fragment_pct": self._level(2),
            "queue_delay_s": _percentiles(list(delays.values())),
            "queue_delay_s_by_team": {t: _percentiles([d for n, d in delays.items() if self.jobs[n].spec.team == t])
                                      for t in self.teams},
            "queue_delay_s_by_size": {c: _percentiles([d for n, d in delays.items() if self.jobs[n].spec.size_class == c])
                                      for c in _SIZES if any(j.spec.size_class == c for j in jobs)},
            "job_completion_s": _percentiles([j.finished_s - j.spec.submit_s for j in jobs if j.finished_s is not None]),
            "gang_wait_s": _percentiles([d for n, d in delays.items() if self.jobs[n].spec.gang]),
            "teams": self._team_summary(),
            "evictions": {f"{team}/{why}": n for (team, why), n in sorted(self.evictions.items())},
        }
        return out

    def _team_summary(self) -> dict:
        usage = np.array(self.team_usage, float) if self.team_usage else np.zeros((0, 1 + 2 * len(self.teams)))
        out = {}
        for i, team in enumerate(self.teams):
            used, borrowed = usage[:, 1 + i], usage[:, 1 + len(self.teams) + i]
            out[team] = {"gpus_mean": _round(_step_mean(usage[:, 0], used)), "gpus_peak": _round(used.max(initial=0)),
                         "borrowed_gpus_mean": _round(_step_mean(usage[:, 0], borrowed)),
                         "borrowed_gpus_peak": _round(borrowed.max(initial=0)),
                         "guaranteed_gpus": _round(self.guaranteed.get(team, 0) / 1000) if team in self.guaranteed else None}
        return out

    def _level(self, i: int) -> dict:
        """Time-weighted mean over the whole run and while jobs were arriving, and the peak."""
        t, v = self._column(0), self._column(i)
        last_arrival = max((j.spec.submit_s for j in self.jobs.values()), default=0.0)
        arriving = t <= last_arrival
        return {"mean": _round(_step_mean(t, v)),
                "mean_while_arriving": _round(_step_mean(t[arriving], v[arriving])) if arriving.any() else None,
                "peak": _round(v.max(initial=0))}

    def _column(self, i: int) -> np.ndarray:
        return np.array([row[i] for row in self.timeline], float)

def borrowed_by_team(used: Counter[str], guaranteed: dict[str, float], *, quotas: bool) -> dict[str, float]:
    """Milli-GPUs each team uses above its guarantee now (a team without one: all it uses); none
    without quotas. Not the pods flagged borrowed at bind: a team whose older pods ended is back
    within its guarantee, whatever its newer pods were flagged."""
    return {team: max(0, milli - guaranteed.get(team, 0)) if quotas else 0 for team, milli in used.items()}


_SIZES = ("cpu", "share", "1", "2-4", "5-8", ">8")


def _step_mean(t: np.ndarray, v: np.ndarray) -> float:
    if len(t) < 2 or t[-1] <= t[0]:
        return float(v[-1]) if len(v) else 0.0
    return float((v[:-1] * np.diff(t)).sum() / (t[-1] - t[0]))


def _percentiles(values: Sequence[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "mean": None}
    a = np.asarray(values, float)
    return {"n": len(a), "p50": _round(np.percentile(a, 50)), "p95": _round(np.percentile(a, 95)),
            "mean": _round(a.mean())}


def _round(value) -> float | None:
    return None if value is None else round(float(value), 2)
