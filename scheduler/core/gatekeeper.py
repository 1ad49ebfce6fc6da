"""The gatekeeper: gangs and team quotas, wired into the engine's verbs at fixed points.

The engine calls in at these points and nowhere else:
    filter      `filter` decides every gang member's answer; `refine` applies per-node quota
                limits; `after_filter` notes pods that wait for reclaim
    pod_gate    `pod_gate`: a gang member without a reservation, or a pod over its team's max
    bind        `take_reserved` hands a reserved member its planned node and GPUs;
                `record_fields` charges anyone else to their team (and marks borrowing)
    books       `on_recorded`, `on_released`, `on_forgotten`, `give_back`, `on_node_changed`
    preempt     `allowed_victims`
    time        `expire`: reservations past their deadline are released

Rules kept here: a reservation is put in the books in one step (every grant or none) and taken
out in one step; a gang member is bound only from a reservation that covers the whole gang; a
team's usage counts its reservations, so quota checks see them. Time comes from the injected
clock, or (without one) is the latest time handed to `expire`: nothing here reads wall time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from scheduler.core import gate_records, reclaim
from scheduler.core.allocation import Allocation
from scheduler.core.gang_planning import plan_gang
from scheduler.core.gangs import Ended, Gang, GangBook, GangKey, GangSettings, Outcome, Phase
from scheduler.core.policies import POLICIES, Policy, PolicyContext
from scheduler.core.quotas import QuotaBook, QuotaConfig, QuotaUnit, Team
from scheduler.core.request import PodRequest
from scheduler.core.state import CapacityError, ClusterState


class Books(Protocol):
    state: ClusterState
    allocations: dict[str, Allocation]

    def observe(self, pod: PodRequest) -> None: ...


@dataclass(frozen=True)
class PlanTools:
    """The engine's own pieces a plan needs: model masks, policies, their context, and records."""

    models_of: Callable[[PodRequest], np.ndarray]
    policy_of: Callable[[PodRequest], Policy]
    context: Callable[[], PolicyContext]
    allocate: Callable[..., Allocation]
    """allocate(pod, row, slots, **fields) -> the allocation it would get (sequence 0)."""


class Gatekeeper:
    def __init__(self, books: Books, tools: PlanTools, *, clock: Callable[[], float] | None = None,
                 quotas: QuotaConfig | None = None, gangs: GangSettings | None = None) -> None:
        self.books = books
        self.tools = tools
        self._clock = clock
        self._now = 0.0
        self.gangs = GangBook(gangs)
        self.quotas = QuotaBook(quotas)
        self.stats: Counter[str] = Counter()
        """Events since start, for metrics: reserved, complete, expired, invalidated, broken."""
        self.waiting_for_reclaim: dict[str, PodRequest] = {}
        self.journal = gate_records.Journal()
        self._taken: dict[str, int] = {}
        """UID -> reservation it was bound from, until the bind is committed or undone."""
        self._config_version = 0
        """Bumped by every change of teams, labels or PodGroups: a failed plan is retried after one."""

    @property
    def state(self) -> ClusterState:
        return self.books.state

    # ------------------------------------------------------------ configuration
    def set_quotas(self, config: QuotaConfig) -> None:
        self._config_version += 1
        self.quotas.set_config(config)

    def set_team(self, team: Team) -> None:
        """A team derived from a namespace ResourceQuota (configured teams take precedence)."""
        self._config_version += 1
        self.quotas.set_derived_team(team)

    def remove_team(self, name: str) -> None:
        self._config_version += 1
        self.quotas.remove_derived_team(name)

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str] | None) -> None:
        self._config_version += 1
        self.quotas.set_namespace_labels(namespace, labels)

    def set_pod_group(self, namespace: str, name: str, min_member: int | None) -> None:
        self._config_version += 1
        self.gangs.set_pod_group(namespace, name, min_member)

    # --------------------------------------------------------------------- time
    def current_time(self) -> float:
        if self._clock is not None:
            self._now = max(self._now, float(self._clock()))
        return self._now

    def expire(self, now: float | None = None) -> list[Ended]:
        """Release every reservation whose deadline is at or before `now` (default: the clock)."""
        if now is not None:
            self._now = max(self._now, float(now))
        at = self.current_time()
        ended = []
        for gang in self.gangs.due(at):
            r = gang.reservation
            assert r is not None
            reason = (f"reservation expired after {_seconds(r.deadline - r.reserved_at)}s with "
                      f"{len(gang.bound)} of {r.size} members bound")
            ended.append(self._close(gang, Outcome.EXPIRED, reason))
        return ended

    # ------------------------------------------------------------------- filter
    def filter(self, pod: PodRequest, names: Sequence[str]) -> tuple[list[str], dict[str, str]] | None:
        """(passed, unresolvable) for a gang member; None for anyone the ordinary filter handles."""
        if pod.gang is None or (pod.policy is not None and pod.policy not in POLICIES):
            return None
        self.expire()
        self._adopt_namesake(pod)
        rows, _ = self.state.rows_of(names)
        gang = self.gangs.observe(pod, rows[rows >= 0])
        self.journal.pod(pod)
        if self.gangs.reserved_for(pod.uid) is None and self.gangs.phase(gang) is Phase.WAITING:
            self._try_reserve(gang)
        held = self.gangs.reserved_for(pod.uid)
        if held is not None:
            if held.node in names:
                other = f"gang {gang.key}: this member's GPUs are reserved on {held.node}"
                return [held.node], {n: other for n in names if n != held.node}
            return [], dict.fromkeys(names, f"gang {gang.key}: this member's GPUs are reserved on {held.node}, "
                                            "which kube-scheduler's own filters did not pass")
        if self.gangs.phase(gang) is Phase.COMPLETE:
            return None
        return [], dict.fromkeys(names, self._gang_reason(gang))

    def refine(self, pod: PodRequest, passed: list[str], unresolvable: dict[str, str]) -> list[str]:
        """With `a100-equivalent` quotas, drop passed nodes whose GPUs would take the team over its max."""
        if not (self.quotas.enabled and pod.wants_gpu and passed) or self.quotas.config.unit is QuotaUnit.GPU:
            return passed
        if self.gangs.reserved_for(pod.uid) is not None:
            return passed
        team = self.quotas.team_of(pod)
        rows = np.array([self.state.index[n] for n in passed])
        asks = self.quotas.ask_by_row(self.state, pod, rows, self.tools.models_of(pod))
        kept = []
        for name, ask in zip(passed, asks.tolist(), strict=True):
            reason = self.quotas.over_max(team, ask)
            if reason:
                unresolvable[name] = reason
            else:
                kept.append(name)
        return kept

    def after_filter(self, pod: PodRequest, fits_somewhere: bool) -> None:
        """Remember a pod of a team under its guarantee that fits nowhere: reclaim may make room."""
        if not self.quotas.enabled or pod.gang is not None or not pod.wants_gpu:
            return
        waiting = not fits_somewhere and self.quotas.within_guarantee(self.quotas.team_of(pod), self.ask(pod))
        if waiting and pod.uid not in self.waiting_for_reclaim:
            self.waiting_for_reclaim[pod.uid] = pod
            self.journal.pod(pod, reclaim=True)
        elif not waiting and self.waiting_for_reclaim.pop(pod.uid, None) is not None:
            self.journal.forget(pod.uid)

    def pod_gate(self, pod: PodRequest) -> str:
        """A gang member without a reservation (its gang not complete), or a pod over its team's max."""
        if self.gangs.reserved_for(pod.uid) is not None:
            return ""
        if pod.gang is not None:
            gang = self.gangs.get(GangKey.of(pod))
            if gang is None or self.gangs.phase(gang) is not Phase.COMPLETE:
                return self._gang_reason(gang) if gang else f"gang {GangKey.of(pod)}: no member filtered yet"
        if self.quotas.config.unit is QuotaUnit.GPU and pod.wants_gpu:
            return self.quotas.over_max(self.quotas.team_of(pod), pod.total_milli)
        return ""

    def planned_node(self, pod: PodRequest) -> str | None:
        held = self.gangs.reserved_for(pod.uid)
        return held.node if held is not None else None

    # --------------------------------------------------------------------- bind
    def take_reserved(self, uid: str, namespace: str, name: str, node: str) -> tuple[Allocation | None, str]:
        """A reserved member's prospective allocation, taken out of its reservation for binding."""
        held = self.gangs.reserved_for(uid)
        if held is None:
            return None, ""
        if (held.namespace, held.name) != (namespace, name):
            return None, f"UID {uid} belongs to {held.key}, not {namespace}/{name}"
        if held.node != node:
            return None, f"gang {held.namespace}/{held.gang}: {held.key} is reserved on {held.node}, not {node}"
        gang = self.gangs.gang_of(uid)
        assert gang is not None and gang.reservation is not None
        self._taken[uid] = gang.reservation.id
        self.gangs.take(uid)
        return held, ""

    def record_fields(self, pod: PodRequest, row: int, slots: tuple[int, ...]) -> tuple[dict[str, object], str]:
        """The team and borrowing of a pod about to be bound, or why its team's max refuses it."""
        team = self.quotas.team_of(pod)
        milli = pod.gpu_milli if pod.is_share else (1000 if slots else 0)
        charge = self.quotas.grant_charge(self.state, row, slots, milli)
        reason = self.quotas.over_max(team, charge)
        return {"team": team, "borrowed": self.quotas.borrows(team, charge) if charge else False}, reason

    # -------------------------------------------------------------------- books
    def on_recorded(self, alloc: Allocation) -> None:
        """An allocation entered the books (a bind, or a restored record)."""
        if self.quotas.charge_of(alloc.uid) is not None:
            self.quotas.settle(alloc.uid)
        else:
            self.quotas.charge(alloc.uid, self._team_of(alloc), self.charge_of(alloc), reserved=False)
        if self.waiting_for_reclaim.pop(alloc.uid, None) is not None:
            self.journal.forget(alloc.uid)
        self.journal.bound(alloc.uid)
        gang = self.gangs.bound(alloc)
        if gang is not None and gang.reservation is not None and not gang.reservation.members:
            self._close(gang, Outcome.COMPLETE, "every member bound")

    def on_released(self, alloc: Allocation) -> None:
        """A bound pod left the books (it ended, was deleted or evicted)."""
        self._taken.pop(alloc.uid, None)
        self.quotas.uncharge(alloc.uid)
        gang = self.gangs.unbound(alloc)
        if gang is None:
            return
        if gang.reservation is not None:
            self._close(gang, Outcome.INVALIDATED, f"bound member {alloc.key} left before the gang was complete")
        self._tidy(gang)

    def on_replaced(self, alloc: Allocation) -> None:
        """A bound pod's record is being replaced (restored afresh): uncharge it, it stays bound."""
        self.quotas.uncharge(alloc.uid)

    def on_forgotten(self, uid: str) -> None:
        """A pod that was pending (never bound) left."""
        if self.waiting_for_reclaim.pop(uid, None) is not None:
            self.journal.forget(uid)
        gang = self.gangs.gang_of(uid)
        if gang is None:
            return
        reserved = gang.reservation is not None and uid in gang.reservation.members
        pod = gang.pending.get(uid)
        self.gangs.forget(uid)
        self.journal.forget(uid)
        if reserved:
            who = pod.key if pod else uid
            self._close(gang, Outcome.INVALIDATED, f"member {who} left before it was bound")
        self._tidy(gang)

    def give_back(self, alloc: Allocation) -> bool:
        """Undo the bind of a reserved member whose commit failed; False if it was not one.

        The grant stays in the books: back in the reservation it came from, or, when that
        reservation completed with this bind, in a new reservation for just this member.
        """
        reservation_id = self._taken.pop(alloc.uid, None)
        if reservation_id is None:
            return False
        pending = replace(alloc, sequence=0)
        gang = self.gangs.gang_of(alloc.uid)
        if self.gangs.give_back(pending, reservation_id):
            self.quotas.unsettle(alloc.uid)
            return True
        if gang is None or gang.reservation is not None or gang.broken:
            return False
        self.gangs.unbound(alloc)
        self.quotas.unsettle(alloc.uid)
        at = self.current_time()
        reservation = self.gangs.open(gang, {alloc.uid: pending}, at=at,
                                      deadline=at + self.gangs.timeout_of(gang), nodes=(alloc.node,))
        self.journal.reserve(reservation)
        return True

    def on_node_changed(self, name: str, *, rewritten: bool) -> None:
        """A node was rewritten (its grants re-applied by the engine), taken out of service, or removed."""
        row = self.state.index.get(name)
        for gang in list(self.gangs):
            reservation = gang.reservation
            here = [a for a in reservation.members.values() if a.node == name] if reservation else []
            if not here:
                continue
            spec = self.state.specs[row] if row is not None else None
            if spec is None:
                self._close(gang, Outcome.INVALIDATED, f"node {name} left the cluster", keep={a.uid for a in here})
            elif spec.unavailable_reason:
                self._close(gang, Outcome.INVALIDATED, f"node {name} became unavailable: {spec.unavailable_reason}")
            elif rewritten:
                lost = {a.uid for a in here if self.state.check(row, a.grant)}
                for alloc in here:
                    if alloc.uid not in lost:
                        self.state.apply(row, alloc.grant)
                if lost:
                    self._close(gang, Outcome.INVALIDATED, f"node {name} changed under the plan", keep=lost)

    # ------------------------------------------------------------------ preempt
    def allowed_victims(self, pod: PodRequest, uids: Sequence[str]) -> list[str]:
        units = self.units()
        standings = self.quotas.standings(self.quotas.capacity(self.state))
        ask = reclaim.ReclaimAsk(pod.key, self.quotas.team_of(pod), self.ask(pod))
        return reclaim.allowed_victims(ask, uids, units, standings, quotas=self.quotas.enabled)

    def whole_gangs(self, needed: Sequence[str], allowed: Sequence[str]) -> list[str]:
        """`needed` plus the other members of any gang it touches (all in `allowed`, by `allowed_victims`)."""
        gangs = {(a.namespace, a.gang) for u in needed if (a := self.books.allocations.get(u)) is not None and a.gang}
        if not gangs:
            return list(needed)
        chosen = set(needed)
        return [u for u in allowed if u in chosen or (
            (a := self.books.allocations.get(u)) is not None and (a.namespace, a.gang) in gangs)]

    def evictions(self) -> list[tuple[GangKey, tuple[str, ...], str]]:
        """Broken gangs: (gang, bound member UIDs, why) for an adapter to evict, whole."""
        return [(g.key, tuple(sorted(g.bound)), g.broken) for g in self.gangs if self.gangs.phase(g) is Phase.BROKEN]

    # -------------------------------------------------------------- persistence
    def snapshot_records(self) -> list[dict]:
        """Records that rebuild the gatekeeper's state (for compacting a state file)."""
        return gate_records.snapshot(self)

    def restore_records(self, records) -> list[str]:
        """Rebuild from journal records, on top of the restored allocations; returns what did not fit."""
        return gate_records.restore(self, records)

    # ---------------------------------------------------------------- internals
    def _try_reserve(self, gang: Gang) -> None:
        needed = self.gangs.needed(gang)
        members = self.gangs.to_plan(gang)
        if not needed or len(members) < needed:
            return
        state = self.state
        candidates = self.gangs.candidates(m.uid for m in members)
        lists = [candidates.get(m.uid) for m in members]
        attempt = (state.generation, self._config_version, tuple((m.uid, id(c)) for m, c in zip(members, lists, strict=True)),
                   lists)  # the lists themselves are kept, so their ids cannot be reused meanwhile
        if gang.attempt is not None and gang.attempt[:3] == attempt[:3]:
            return  # nothing changed since this very plan failed: every member's filter would redo it
        gang.attempt = attempt
        plan = plan_gang(state, members, candidates=candidates,
                         models_of=self.tools.models_of, policy_of=self.tools.policy_of,
                         ctx=self.tools.context(), topology=self.gangs.settings.topology,
                         allocate=lambda p, row, slots: self.tools.allocate(p, row, slots, team=self.quotas.team_of(p)))
        if isinstance(plan, str):
            self._problem(gang, f"{needed} members do not fit together now: {plan}")
            return
        charges = {a.uid: self.charge_of(a) for a in plan.placements}
        asks: Counter[str] = Counter()
        for alloc in plan.placements:
            asks[alloc.team] += charges[alloc.uid]
        for team, ask in sorted(asks.items()):
            problem = self.quotas.over_max(team, ask)
            if problem:
                self._problem(gang, problem)
                return
        running: Counter[str] = Counter()
        members_held: dict[str, Allocation] = {}
        for alloc in plan.placements:
            running[alloc.team] += charges[alloc.uid]
            members_held[alloc.uid] = replace(alloc, borrowed=self.quotas.borrows(alloc.team, running[alloc.team]))
        applied: list[Allocation] = []
        try:
            for alloc in members_held.values():
                state.apply(state.index[alloc.node], alloc.grant)
                applied.append(alloc)
        except CapacityError as e:  # the plan was made on a copy of these very books: a bug, never a verdict
            for alloc in applied:
                state.release(state.index[alloc.node], alloc.grant)
            self._problem(gang, f"internal error holding the plan: {e}")
            return
        for uid, alloc in members_held.items():
            self.quotas.charge(uid, alloc.team, charges[uid], reserved=True)
        at = self.current_time()
        reservation = self.gangs.open(gang, members_held, at=at, deadline=at + self.gangs.timeout_of(gang),
                                      nodes=plan.nodes, zones=plan.zones, racks=plan.racks)
        self.stats["reserved"] += 1
        self.journal.reserve(reservation)

    def _tidy(self, gang: Gang) -> None:
        if gang.empty and gang.problem:
            self.journal.problem(gang.key, "")
        self.gangs.tidy(gang)

    def _problem(self, gang: Gang, reason: str) -> None:
        if gang.problem != reason:
            gang.problem = reason
            self.journal.problem(gang.key, reason)

    def _close(self, gang: Gang, outcome: Outcome, reason: str, *, keep: set[str] = frozenset()) -> Ended:
        """End a reservation: release what it still holds (except `keep`, already gone from the books)."""
        reservation = self.gangs.close(gang, outcome, reason, at=self.current_time())
        assert reservation is not None
        for uid, alloc in reservation.members.items():
            row = self.state.index.get(alloc.node)
            if row is not None and uid not in keep:
                self.state.release(row, alloc.grant)
            self.quotas.uncharge(uid)
        self.stats[outcome.value] += 1
        ended = self.gangs.history[-1]
        self.journal.close(ended)
        if gang.broken:
            self.stats["broken"] += 1
            self.journal.broken(gang.key, gang.broken)
        self._tidy(gang)
        return ended

    def _adopt_namesake(self, pod: PodRequest) -> None:
        """A reserved member re-created under its name: the new pod takes its place, or the plan ends."""
        old = self.gangs.namesake(pod)
        if old is None:
            return
        gang = self.gangs.gang_of(old)
        assert gang is not None
        before = gang.pending.get(old)
        if before is not None and before.shape == pod.shape and before.policy == pod.policy:
            charge = self.quotas.uncharge(old)
            self.gangs.rekey(old, pod)
            if charge is not None:
                self.quotas.charge(pod.uid, charge.team, charge.milli, reserved=True)
            self.journal.rekey(gang.key, old, pod.uid)
        else:
            self._close(gang, Outcome.INVALIDATED, f"member {pod.key} was re-created with a different request")

    def _gang_reason(self, gang: Gang) -> str:
        phase = self.gangs.phase(gang)
        if phase is Phase.BROKEN:
            return (f"gang {gang.key}: {gang.broken}; its {len(gang.bound)} bound members must leave "
                    "before it is planned again")
        if phase is Phase.RESERVED:
            return f"gang {gang.key}: its reservation holds other members; this pod is beyond the gang's size"
        size = self.gangs.size(gang)
        if size is None:
            return f"gang {gang.key}: size unknown (no PodGroup with minMember known to gpusched)"
        needed = self.gangs.needed(gang) or 0
        if len(gang.pending) < needed:
            if gang.bound:
                return f"gang {gang.key}: {len(gang.bound)} bound, {len(gang.pending)} of {needed} more members pending"
            return f"gang {gang.key}: {len(gang.pending)} of {size} members pending"
        return f"gang {gang.key}: {gang.problem or 'waiting to be planned'}"

    def ask(self, pod: PodRequest) -> int:
        """What the pod would be charged at most (its dearest allowed GPU)."""
        rows = self.state.live_rows()
        if self.quotas.config.unit is QuotaUnit.GPU or not len(rows):
            return pod.total_milli
        return int(self.quotas.ask_by_row(self.state, pod, rows, self.tools.models_of(pod)).max())

    def _team_of(self, alloc: Allocation) -> str:
        return alloc.team or self.quotas.team_of_namespace(alloc.namespace)

    def charge_of(self, alloc: Allocation) -> int:
        return self.quotas.grant_charge(self.state, self.state.index.get(alloc.node), alloc.slots, alloc.milli)

    def units(self) -> list[reclaim.Unit]:
        def charge(uid: str) -> int:
            c = self.quotas.charge_of(uid)
            return c.milli if c else 0
        return reclaim.units_of(self.books.allocations.values(), charge, self._team_of)


def _seconds(value: float) -> str:
    return f"{value:g}"
