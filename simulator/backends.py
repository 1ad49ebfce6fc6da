"""The two ways the simulator reaches the extender, answering the same three questions.

- `InProcess`: the core calls the extender's handlers make (`Engine.fit_rows`, `score_rows`,
  `bind`), on state rows: no HTTP, no JSON, no name lookups. For speed and for the FGD protocol.
- `OverHttp`: a real extender (`ExtenderService` behind the aiohttp app) listening on loopback,
  driven with the exact wire messages kube-scheduler sends (`ExtenderClient`). Its binder plays the
  API server: it records each allocation the extender commits (the pod annotations of DESIGN §3),
  which is how the simulator, like kube-scheduler, learns which GPUs a pod got.
- `Remote`: an extender someone else started (`gpusched serve --cluster FILE --virtual-clock`,
  `--extender-url`), same messages; after a bind the pod's GPUs are read from its `GET /state`, the
  pod asks for the policy by annotation, and the trace's time, its pending pods and its GPU
  failures reach the extender through the `simulated_time` verbs. The extender must start fresh,
  on simulated time, with the run's seed and the workload's teams, else the run is refused: any of
  these would make it place differently from the other two modes.

Both rank the same way: `best` returns every node with the top score. In-process that is the
policy's float maximum; over HTTP it is the nodes scored 10, which `wire.scale_scores` gives to
exactly the policy's maximum. So for the same seed both modes place identically (tested).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from scheduler.core.allocation import Allocation
from scheduler.core.engine import BindRejected, Engine
from scheduler.core.model import Node
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.core.reclaim_plans import current_plans
from scheduler.core.request import PodRequest
from scheduler.core.verdict import Reason
from simulator.podspec import api_pod


@dataclass(frozen=True)
class Filtered:
    feasible: np.ndarray
    """Rows that passed, in the order asked."""
    reasons: dict[str, int] = field(default_factory=dict)
    """When none passed: why, as kube-scheduler's histogram (message -> nodes)."""


class Backend(Protocol):
    engine: Engine

    async def filter(self, pod: PodRequest, candidates: np.ndarray) -> Filtered:
        """The extender's filter over the candidate rows (`candidates`: bool per row, from the in-tree filters)."""

    async def best(self, pod: PodRequest, rows: np.ndarray) -> np.ndarray: ...

    async def bind(self, pod: PodRequest, row: int) -> Allocation | str: ...

    async def release(self, uid: str) -> None: ...

    async def node_changed(self, node: Node) -> None: ...

    async def expire(self, now: float) -> None:
        """Virtual time moved to `now`: gang reservations past their deadline end (the extender's sweeper)."""

    async def evictions(self) -> list[tuple[tuple[str, ...], str]]:
        """What the reclaimer would evict now: (UIDs, "reclaim" | "gang-broken") per plan."""

    async def observe_pending(self, pod: PodRequest) -> None:
        """The Kubernetes adapter's pod watch saw `pod` pending (`Engine.observe_pending`): it may
        wait for reclaim even when kube-scheduler's own filters rejected it without asking."""


def engine_evictions(engine: Engine) -> list[tuple[tuple[str, ...], str]]:
    """The Kubernetes reclaimer's worklist, from the engine's gatekeeper (scheduler/kube/gatefeed.py reads the same)."""
    out = [(plan.uids, "reclaim") for plan in current_plans(engine.gates) if plan.victims]
    out += [(tuple(uids), "gang-broken") for _, uids, _ in engine.gates.evictions()]
    return out


class InProcess:
    def __init__(self, engine: Engine, names: Sequence[str]) -> None:
        if list(engine.state.names[:len(names)]) != list(names):
            raise ValueError("the engine's node rows must be the simulator's, in the same order")
        self.engine = engine
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._fit: tuple[str, np.ndarray, np.ndarray | None] | None = None

    def _by_name(self, pod: PodRequest) -> bool:
        """Gang members and, with quotas, every pod: the gatekeeper decides by node name, in `Engine.filter`."""
        return pod.gang is not None or self.engine.gates.quotas.enabled

    async def filter(self, pod: PodRequest, candidates: np.ndarray) -> Filtered:
        if self._by_name(pod):
            answer = self.engine.filter(pod, [self.names[r] for r in np.flatnonzero(candidates).tolist()])
            feasible = np.array([self.index[n] for n in answer.passed], np.int64)
            self._fit = (pod.uid, feasible, None)
            if len(feasible):
                return Filtered(feasible)
            reasons: dict[str, int] = {}
            for message in [*answer.unresolvable.values(), *answer.failed.values()]:
                reasons[message] = reasons.get(message, 0) + 1
            return Filtered(feasible, reasons)
        # Every row through one slice (array views: much faster than gathering the candidates), then
        # only the candidates kept: the same answer as filtering the candidates alone (`fit` is pure).
        gate, fit = self.engine.fit_rows(pod, slice(0, len(candidates)))
        if fit is None:
            return Filtered(np.zeros(0, np.int64), {gate: int(np.count_nonzero(candidates))})
        # Positions, then take(): boolean-mask indexing of the [rows, slots] table costs ~10x more.
        at = ((fit.codes == 0) & candidates).nonzero()[0]
        feasible = fit.rows.take(at)
        self._fit = (pod.uid, feasible, fit.slot_fit.take(at, 0))
        if len(feasible):
            return Filtered(feasible)
        counts = np.bincount(fit.codes[candidates])  # reason codes are small ints: in code order, as np.unique
        return Filtered(feasible, {Reason(c).message: int(counts[c]) for c in np.flatnonzero(counts).tolist()})

    async def best(self, pod: PodRequest, rows: np.ndarray) -> np.ndarray:
        if self._by_name(pod):
            scores = self.engine.score_array(pod, [self.names[r] for r in rows.tolist()])
            return rows[scores == np.nanmax(scores)]
        if self._fit is not None and self._fit[0] == pod.uid and (self._fit[1] is rows
                                                                  or np.array_equal(self._fit[1], rows)):
            slot_fit = self._fit[2]
        else:  # asked about rows other than the last filter's: filter them again
            _, fit = self.engine.fit_rows(pod, rows)
            slot_fit = fit.slot_fit if fit is not None else np.zeros((len(rows), self.engine.state.slots), bool)
        scores = self.engine.score_rows(pod, rows, slot_fit)
        return rows[scores == scores.max()]

    async def bind(self, pod: PodRequest, row: int) -> Allocation | str:
        try:
            return self.engine.bind(pod.uid, pod.namespace, pod.name, self.names[row])
        except BindRejected as e:
            return str(e)

    async def release(self, uid: str) -> None:
        self.engine.release(uid)

    async def node_changed(self, node: Node) -> None:
        self.engine.upsert_node(node)

    async def expire(self, now: float) -> None:
        self.engine.expire(now)

    async def evictions(self) -> list[tuple[tuple[str, ...], str]]:
        return engine_evictions(self.engine)

    async def observe_pending(self, pod: PodRequest) -> None:
        self.engine.observe_pending(pod)


class ApiServerRecorder:
    """A `Binder` that plays the API server: it keeps the allocations the extender commits."""

    def __init__(self) -> None:
        self.bound: dict[str, Allocation] = {}

    async def commit(self, alloc: Allocation, *, waited_s: float = 0.0) -> None:
        self.bound[alloc.uid] = alloc

    async def forget(self, alloc: Allocation) -> None:
        self.bound.pop(alloc.uid, None)


class OverHttp:
    def __init__(self, engine: Engine, names: Sequence[str], client, recorder: ApiServerRecorder) -> None:
        self.engine = engine
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.client = client
        self.recorder = recorder
        self._api: tuple[str, dict] | None = None

    @classmethod
    @asynccontextmanager
    async def serving(cls, engine: Engine, names: Sequence[str]) -> AsyncIterator[OverHttp]:
        """Start the real extender on a free loopback port around `engine`, and a client for it."""
        from scheduler.extender.server import start
        from scheduler.extender.service import ExtenderService
        from simulator.extender_client import ExtenderClient

        recorder = ApiServerRecorder()
        server = await start(ExtenderService(engine, binder=recorder))
        try:
            async with ExtenderClient(server.url, timeout_s=60.0) as client:
                yield cls(engine, names, client, recorder)
        finally:
            await server.close()

    def _pod(self, pod: PodRequest) -> dict:
        if self._api is None or self._api[0] != pod.uid:
            self._api = (pod.uid, api_pod(pod))
        return self._api[1]

    async def filter(self, pod: PodRequest, candidates: np.ndarray) -> Filtered:
        rows = np.flatnonzero(candidates)
        result = await self.client.filter(self._pod(pod), [self.names[r] for r in rows.tolist()])
        if result.get("Error"):
            return Filtered(rows[:0], {result["Error"]: len(rows)})
        feasible = np.array([self.index[n] for n in result.get("NodeNames") or []], np.int64)
        if len(feasible):
            return Filtered(feasible)
        reasons: dict[str, int] = {}
        for failed in (result.get("FailedAndUnresolvableNodes") or {}, result.get("FailedNodes") or {}):
            for message in failed.values():
                reasons[message] = reasons.get(message, 0) + 1
        return Filtered(feasible, reasons)

    async def best(self, pod: PodRequest, rows: np.ndarray) -> np.ndarray:
        scored = await self.client.prioritize(self._pod(pod), [self.names[r] for r in rows.tolist()])
        score = {p["Host"]: p["Score"] for p in scored}
        values = np.array([score.get(self.names[r], 0) for r in rows.tolist()])
        return rows[values == values.max()]

    async def bind(self, pod: PodRequest, row: int) -> Allocation | str:
        error = await self.client.bind(self._pod(pod), self.names[row])
        if error:
            return error
        return self.recorder.bound[pod.uid]

    async def release(self, uid: str) -> None:
        await self.client.release(uid)

    async def node_changed(self, node: Node) -> None:
        # The extender's Kubernetes sync would deliver this; with a static cluster, hand it over directly
        # (same event loop, between requests).
        self.engine.upsert_node(node)

    async def expire(self, now: float) -> None:
        self.engine.expire(now)  # what the extender's reservation sweeper does, at virtual time

    async def evictions(self) -> list[tuple[tuple[str, ...], str]]:
        # The Kubernetes reclaimer runs in the extender's process and reads the engine: so does this.
        return engine_evictions(self.engine)

    async def observe_pending(self, pod: PodRequest) -> None:
        # So does the adapter's pod watch, which feeds the engine on the same event loop.
        self.engine.observe_pending(pod)


class Remote(OverHttp):
    def __init__(self, names: Sequence[str], client, policy: str) -> None:
        super().__init__(None, names, client, ApiServerRecorder())
        self.policy = policy

    @classmethod
    @asynccontextmanager
    async def connecting(cls, url: str, names: Sequence[str], policy: str, *, seed: int,
                         quotas: QuotaConfig | None) -> AsyncIterator[Remote]:
        """Refuses (ValueError) an extender that would not place as the other two modes do."""
        from simulator.extender_client import ExtenderClient

        async with ExtenderClient(url, timeout_s=60.0) as client:
            state = await client.state()
            if state.get("clock") != "simulated":
                raise ValueError(f"the extender at {url} keeps wall-clock time, so its gang reservations would "
                                 "expire by the wall clock, not the trace's: start it with "
                                 "`gpusched serve --cluster FILE --virtual-clock`")
            if state.get("seed") != seed:
                raise ValueError(f"the extender at {url} breaks ties with seed {state.get('seed')}, this run with "
                                 f"{seed}: start it with --seed {seed}")
            wanted = _teams_yaml(quotas.teams if quotas else ())
            served = _teams_yaml(Team(t["name"], t["guaranteedMilli"], t["maxMilli"], t["weight"])
                                 for t in state.get("teams", {}).get("teams", []) if t.get("source") == "config")
            if served != wanted:
                raise ValueError(f"the extender at {url} has teams {served or '[]'}, the workload {wanted or '[]'}: "
                                 f"start it with --config FILE holding `teams: {wanted or '[]'}`")
            known = {n["name"] for n in state.get("nodes", [])}
            missing = sorted(set(names) - known)
            if missing:
                raise ValueError(f"the extender at {url} does not know node(s) {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''}: serve it the same cluster")
            held, gangs, now = state.get("pods", 0), len(state.get("gangs", [])), state.get("now", 0)
            if held or gangs or now:
                raise ValueError(f"the extender at {url} is not fresh (its clock is at {now:g} s; it holds {held} "
                                 f"pod(s) and knows {gangs} gang(s)), from an earlier run or its cluster file: "
                                 "restart it with a cluster file without running pods, so that this run starts "
                                 "from the same empty cluster and an empty workload history")
            yield cls(names, client, policy)


    def _pod(self, pod: PodRequest) -> dict:
        return super()._pod(replace(pod, policy=self.policy) if pod.policy is None else pod)

    async def bind(self, pod: PodRequest, row: int) -> Allocation | str:
        node = self.names[row]
        error = await self.client.bind(self._pod(pod), node)
        if error:
            return error
        view = await self.client.state()
        entry = next(n for n in view["nodes"] if n["name"] == node)
        held = [g for g in entry["gpus"] if pod.key in g["pods"]]
        milli = pod.gpu_milli if pod.is_share else (1000 if held else 0)
        memory = tuple(pod.gpu_memory_mib if pod.is_share else g["usedMemoryMiB"] for g in held)
        return Allocation(uid=pod.uid, namespace=pod.namespace, name=pod.name, node=node,
                          gpu_uuids=tuple(g["uuid"] for g in held), slots=tuple(g["index"] for g in held),
                          milli=milli, gpu_memory_mib=memory, cpu_milli=pod.cpu_milli, memory_mib=pod.memory_mib,
                          share=pod.is_share, team=pod.team_label or "")

    async def node_changed(self, node: Node) -> None:
        await self._lab("gpu-health", {"Node": node.name, "UnhealthyGPUs": [g.index for g in node.gpus if not g.healthy]})

    async def expire(self, now: float) -> None:
        await self._lab("clock", {"Now": now})

    async def observe_pending(self, pod: PodRequest) -> None:
        await self._lab("pending", {"Pod": self._pod(pod)})

    async def _lab(self, verb: str, message: dict) -> None:
        error = (await self.client.call(verb, message)).get("Error", "")
        if error:
            raise ValueError(f"{verb}: {error}")

    async def evictions(self) -> list[tuple[tuple[str, ...], str]]:
        state = await self.client.state()
        out = [(tuple(u for v in plan["victims"] for u in v["uids"]), "reclaim")
               for plan in state.get("reclaim", []) if plan.get("victims")]
        out += [(tuple(e["uids"]), "gang-broken") for e in state.get("gangEvictions", [])]
        return out


def _teams_yaml(teams) -> str:
    """Teams as a `--config` file writes them (GPUs), in name order."""
    def gpus(milli: int) -> str:
        return f"{milli / 1000:g}"
    return ", ".join(f"{{name: {t.name}, guaranteed: {gpus(t.guaranteed_milli)}"
                     + (f", max: {gpus(t.max_milli)}" if t.max_milli is not None else "")
                     + f", weight: {t.weight:g}}}" for t in sorted(teams, key=lambda t: t.name))
