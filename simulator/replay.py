"""The time-driven replay: a priority queue of events, kube-scheduler's queue, the same core.

Each event time is handled as kube-scheduler would see it:
  1. apply the events due: job arrivals (their pods join the queue), pod completions (deleted,
     their GPUs released), GPU failures (the node changes; pods on that GPU are evicted, and a
     job whose pod was evicted restarts whole, as a failed distributed job does) and repairs
  2. if anything freed capacity or changed a node, every unschedulable pod moves back to the
     active queue (kube-scheduler's MoveAllToActiveOrBackoffQueue on such cluster events)
  3. a scheduling pass: active pods in kube-scheduler's order (priority, then arrival), one
     cycle each (`KubeScheduler`: in-tree filters, the extender's filter, prioritize, bind);
     those that fit nowhere wait in the unschedulable set, and the extender's pod watch sees them
     pending (`Backend.observe_pending`): a pod kube-scheduler's own filters rejected without
     asking the extender (every `nvidia.com/gpu` requested) may still wait for reclaim. A bind is
     a cluster event as well, but it can only help gang members (their gang may now be reserved):
     they get another pass
  4. the reclaimer: pods the core's reclaim plan names (borrowed pods of teams above their share,
     for a team under its guarantee that fits nowhere) and broken gangs are evicted, their jobs
     restart, and the queue is tried again
  5. a sample of the metrics
Gang reservations are timed by virtual time: `expire(t)` at every event time, as the extender's
sweeper would.

Within one pass, a pod identical to one that just failed (same shape, team, no gang) with
nothing bound in between would fail the same way; it is answered from that failure instead of
another cycle (counted in the summary). Backoff timers are not modelled: retries happen at the
next event that frees capacity.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.model import Node
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.core.request import PodRequest
from simulator.backends import InProcess, OverHttp, Remote
from simulator.cluster_view import ClusterView
from simulator.kube_scheduler import KubeScheduler, TieBreak
from simulator.metrics import Recorder
from simulator.scenario import JobSpec, Scenario

_RECLAIM_ROUNDS = 4
"""Evict-and-schedule rounds at one event time (a round that evicts nothing ends them)."""
_GANG_RETRIES = 8
"""Passes at one event time for gang members after binds (each pass must bind something to continue)."""


class Kind(IntEnum):
    """Events at the same time are applied in this order: capacity leaves before it arrives."""

    FINISH = 0
    REPAIR = 1
    FAIL = 2
    ARRIVE = 3


@dataclass
class ReplayResult:
    scenario: Scenario
    policy: str
    seed: int
    label: str
    recorder: Recorder
    placements: list[tuple[float, str, str, tuple[int, ...]]]
    """(time, pod UID, node, GPU slots) per bind, in order."""
    seconds: float

    @property
    def summary(self) -> dict:
        return {"label": self.label, "scenario": self.scenario.name, "policy": self.policy, "seed": self.seed,
                **self.recorder.summary(), "seconds": round(self.seconds, 2)}

    def detached(self) -> ReplayResult:
        """This result without the live cluster (what the report needs, small enough to send between processes)."""
        self.recorder.detach()
        return self


def run(nodes: Sequence[Node], scenario: Scenario, *, policy: str, seed: int, via_http: bool = False,
        extender_url: str | None = None, label: str | None = None,
        progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """One replay: in-process, over HTTP to an extender started here (`via_http`), or to one already
    running at `extender_url` (serving the same nodes)."""
    return asyncio.run(_run(list(nodes), scenario, policy=policy, seed=seed, via_http=via_http,
                            extender_url=extender_url, label=label or policy, progress=progress))


async def _run(nodes: list[Node], scenario: Scenario, *, policy: str, seed: int, via_http: bool,
               extender_url: str | None, label: str, progress) -> ReplayResult:
    import time

    started = time.perf_counter()
    view = ClusterView(nodes)
    engine = Engine(nodes, settings=EngineSettings(policy=policy, seed=seed), quotas=quota_config(scenario))
    if extender_url:
        async with Remote.connecting(extender_url, view.names, policy, seed=seed,
                                     quotas=quota_config(scenario)) as backend:
            replay = Replay(scenario, view, backend, seed=seed, progress=progress)
            await replay.run()
    elif via_http:
        async with OverHttp.serving(engine, view.names) as backend:
            replay = Replay(scenario, view, backend, seed=seed, progress=progress)
            await replay.run()
    else:
        replay = Replay(scenario, view, InProcess(engine, view.names), seed=seed, progress=progress)
        await replay.run()
    return ReplayResult(scenario, policy, seed, label, replay.recorder, replay.placements,
                        time.perf_counter() - started)


def quota_config(scenario: Scenario) -> QuotaConfig | None:
    """The scenario's teams as the extender's `teams:` configuration (None: no quotas)."""
    if not scenario.teams:
        return None
    return QuotaConfig(teams=tuple(Team(t.name, round(t.guaranteed_gpus * 1000),
                                        None if t.max_gpus is None else round(t.max_gpus * 1000), t.weight)
                                   for t in scenario.teams))


class Replay:
    def __init__(self, scenario: Scenario, view: ClusterView, backend, *, seed: int, progress=None) -> None:
        self.scenario = scenario
        self.view = view
        self.backend = backend
        self.scheduler = KubeScheduler(view, backend, seed=seed, tie_break=TieBreak.UNIFORM)
        self.recorder = Recorder(scenario, view)
        self.progress = progress
        self.placements: list[tuple[float, str, str, tuple[int, ...]]] = []
        self._events: list[tuple[float, int, int, object]] = []
        self._order = itertools.count()
        self._active: list[tuple[int, float, int, PodRequest]] = []
        self._unschedulable: dict[str, tuple[int, float, int, PodRequest]] = {}
        self._job_of: dict[str, JobSpec] = {}
        self._attempt: dict[str, int] = {}
        self._running: dict[str, set[str]] = {}
        for job in scenario.jobs:
            self._push(job.submit_s, Kind.ARRIVE, job)
        for failure in scenario.failures:
            if failure.node not in view.state.index:  # a scenario made for another cluster (compare)
                continue
            self._push(failure.at_s, Kind.FAIL, failure)
            if failure.repair_s is not None:
                self._push(failure.at_s + failure.repair_s, Kind.REPAIR, failure)

    def _push(self, t: float, kind: Kind, payload) -> None:
        heapq.heappush(self._events, (t, int(kind), next(self._order), payload))

    async def run(self) -> None:
        total = len(self._events)
        handled = 0
        while self._events:
            t = self._events[0][0]
            changed = False
            while self._events and self._events[0][0] == t:
                _, kind, _, payload = heapq.heappop(self._events)
                changed |= await self._apply(Kind(kind), payload, t)
                handled += 1
            await self.backend.expire(t)
            if changed:
                self._retry_unschedulable()
            await self._schedule(t)
            for _ in range(_RECLAIM_ROUNDS):  # the reclaimer evicts; the freed GPUs go to the queue
                if not await self._evict(t):
                    break
                self._retry_unschedulable()
                await self._schedule(t)
            self.recorder.sample(t, pending=len(self._unschedulable) + len(self._active),
                                 running=len(self.view.bound))
            if self.progress is not None and handled % 64 == 0:
                self.progress(handled, total + handled - len(self._events))
        if self.progress is not None:
            self.progress(handled, handled)

    # ------------------------------------------------------------------ events
    async def _apply(self, kind: Kind, payload, t: float) -> bool:
        if kind is Kind.ARRIVE:
            self._submit(payload, t, attempt=0)
            return False
        if kind is Kind.FINISH:
            uid, attempt = payload
            job = self._job_of.get(uid)
            if job is None or self._attempt.get(job.name) != attempt or uid not in self.view.bound:
                return False  # this attempt was evicted earlier
            await self.scheduler.delete(uid)
            self.recorder.ended(uid, t)
            return True
        failure = payload
        row = self.view.state.index[failure.node]
        node = self.view.state.specs[row]
        healthy = kind is Kind.REPAIR
        gpus = tuple(replace(g, healthy=healthy, unhealthy_reason="" if healthy else "simulated GPU failure")
                     if g.index == failure.gpu else g for g in node.gpus)
        changed = replace(node, gpus=gpus)
        self.view.replace_node(changed)
        await self.backend.node_changed(changed)
        if not healthy:
            victims = {a.uid for a in self.view.bound.values() if a.node == failure.node and failure.gpu in a.slots}
            for job in {self._job_of[uid].name: self._job_of[uid] for uid in victims}.values():
                await self._restart(job, t, why="gpu-failure")
        return True

    async def _schedule(self, t: float) -> None:
        bound = await self._pass(t)
        # A bind is a cluster event too (kube-scheduler's AssignedPodAdd): waiting gang members
        # are tried again, as a member's bind may have completed their gang's reservation.
        for _ in range(_GANG_RETRIES):
            if not bound or not self._retry_unschedulable(gangs_only=True):
                break
            bound = await self._pass(t)

    async def _evict(self, t: float) -> bool:
        """What the Kubernetes reclaimer would do now: evict each plan's pods (their jobs restart)."""
        evicted = False
        for uids, why in await self.backend.evictions():
            jobs = {self._job_of[uid].name: self._job_of[uid] for uid in uids if uid in self._job_of}
            for job in jobs.values():
                await self._restart(job, t, why=why)
                evicted = True
        return evicted

    def _submit(self, job: JobSpec, t: float, *, attempt: int) -> None:
        pods = job.pods(attempt=attempt)
        self._attempt[job.name] = attempt
        self._running[job.name] = set()
        self.recorder.submitted(job, pods, t, attempt)
        for pod in pods:
            self._job_of[pod.uid] = job
            # Queue order: priority, then when the pod was created (a restart makes new pods, so
            # an evicted job queues behind the pods already waiting, as in kube-scheduler).
            heapq.heappush(self._active, (-pod.priority, t, next(self._order), pod))

    async def _restart(self, job: JobSpec, t: float, *, why: str) -> None:
        """Evict every pod of the job's current attempt and submit it again (new pods)."""
        attempt = self._attempt[job.name]
        uids = {pod.uid for pod in job.pods(attempt=attempt)}
        for uid in uids:
            if uid in self.view.bound:
                await self.scheduler.delete(uid)
                self.recorder.ended(uid, t, evicted=why)
            elif uid in self._unschedulable:
                del self._unschedulable[uid]
                await self.backend.release(uid)  # the extender forgets the pending pod (a gang's hold too)
        self._active = [entry for entry in self._active if entry[3].uid not in uids]
        heapq.heapify(self._active)
        self.recorder.restarted(job)
        self._submit(job, t, attempt=attempt + 1)

    def _retry_unschedulable(self, *, gangs_only: bool = False) -> int:
        moved = [uid for uid, entry in self._unschedulable.items() if not gangs_only or entry[3].gang is not None]
        for uid in moved:
            heapq.heappush(self._active, self._unschedulable.pop(uid))
        return len(moved)

    # --------------------------------------------------------------- schedule
    async def _pass(self, t: float) -> int:
        """One pass over the active queue; returns how many pods were bound."""
        failed_shapes: set[tuple] = set()
        bound = 0
        while self._active:
            entry = heapq.heappop(self._active)
            pod = entry[3]
            key = (pod.shape, pod.team_label, pod.priority) if pod.gang is None else None
            if key is not None and key in failed_shapes:
                self.recorder.skipped += 1
                self._unschedulable[pod.uid] = entry
                await self.backend.observe_pending(pod)
                continue
            self.recorder.attempts += 1
            outcome = await self.scheduler.schedule(pod)
            if outcome.alloc is None:
                self._unschedulable[pod.uid] = entry
                await self.backend.observe_pending(pod)
                if key is not None:
                    failed_shapes.add(key)
                continue
            failed_shapes.clear()  # something was bound: the cluster changed
            bound += 1
            alloc = outcome.alloc
            job = self._job_of[pod.uid]
            self.placements.append((t, alloc.uid, alloc.node, alloc.slots))
            self.recorder.started(alloc, job, t)
            self._push(t + job.duration_s, Kind.FINISH, (alloc.uid, self._attempt[job.name]))
        return bound
