"""The gatekeeper: gangs and team quotas, wired into the engine's verbs at fixed points.

The engine calls in at these points and nowhere else:
    filter      `filter` decides every gang member's answer; `refine` applies per-node quota
                limits; `after_filter` notes pods that wait for reclaim (and `wait_for_reclaim`
                those an adapter saw pending without a filter call: `Engine.observe_pending`)
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
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scheduler.core import gate_records, reclaim, reservations
from scheduler.core.allocation import Allocation
from scheduler.core.contract import GANG_SIZE_ANNOTATION
from scheduler.core.gangs import Ended, Gang, GangBook, GangKey, GangSettings, Outcome, Phase
from scheduler.core.policies import POLICIES, Policy, PolicyContext
from scheduler.core.quotas import QuotaBook, QuotaConfig, QuotaUnit, Team
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

WAITING_FOR_RECLAIM_LIMIT = 10_000
"""Pods remembered as waiting for reclaim; in a cluster every pod's deletion releases it anyway."""


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
        self.taken: dict[str, int] = {}
        """UID -> reservation it was bound from, until the bind is committed or undone."""
        self.config_version = 0
        """Bumped by every change of teams, labels or PodGroups: a failed plan is retried after one."""
        self.plans_memo: tuple | None = None
        """reclaim_plans.current_plans' last answer and what it depended on."""

    @property
    def state(self) -> ClusterState:
        return self.books.state

    # ------------------------------------------------------------ configuration
    def set_quotas(self, config: QuotaConfig) -> None:
        self.config_version += 1
        self.quotas.set_config(config)

    def set_team(self, team: Team) -> None:
        """A team derived from a namespace ResourceQuota (configured teams take precedence)."""
        self.config_version += 1
        self.quotas.set_derived_team(team)

    def remove_team(self, name: str) -> None:
        self.config_version += 1
        self.quotas.remove_derived_team(name)

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str] | None) -> None:
        self.config_version += 1
        self.quotas.set_namespace_labels(namespace, labels)

    def set_pod_group(self, namespace: str, name: str, min_member: int | None) -> None:
        self.config_version += 1
        self.gangs.set_pod_group(namespace, name, min_member)

    # --------------------------------------------------------------------- time
    def current_time(self) -> float:
        if self._clock is not None:
            self._now = max(self._now, float(self._clock()))
        return self._now

    def expire(self, now: float | None = None) -> list[Ended]:
        """Release every reservation whose deadline is at or before `now` (default: the clock), and
        forget pending gang members idle for too long (`GangBook.idle`)."""
        if now is not None:
            self._now = max(self._now, float(now))
        at = self.current_time()
        ended = []
        for gang in self.gangs.due(at):
            r = gang.reservation
            assert r is not None
            reason = (f"reservation expired after {_seconds(r.deadline - r.reserved_at)}s with "
                      f"{len(gang.bound)} of {r.size} members bound")
            ended.append(reservations.close(self, gang, Outcome.EXPIRED, reason))
        for uid in self.gangs.idle(at):  # members nobody asks about any more (their pods are gone)
            self.on_forgotten(uid)
        return ended

    # ------------------------------------------------------------------- filter
    def filter(self, pod: PodRequest, names: Sequence[str]) -> tuple[list[str], dict[str, str]] | None:
        """(passed, unresolvable) for a gang member; None for anyone the ordinary filter handles."""
        self._left_gang(pod)
        if pod.gang is None or (pod.policy is not None and pod.policy not in POLICIES):
            return None
        if pod.uid in self.books.allocations:
            return None  # bound already (kube-scheduler does not ask again): no longer a pending member
        if not pod.uid:  # members are kept, reserved and journaled by UID: one without cannot be counted
            return [], dict.fromkeys(names, f"gang {GangKey.of(pod)}: a member needs metadata.uid")
        self.expire()
        reservations.adopt_namesake(self, pod)
        rows, _ = self.state.rows_of(names)
        replaced: list[str] = []
        gang = self.gangs.observe(pod, rows[rows >= 0], at=self.current_time(), replaced=replaced)
        for uid in replaced:
            self.journal.forget(uid)
        self.journal.pod(pod)
        conflict = self._size_conflict(gang)
        if conflict and gang.reservation is not None and not gang.bound:
            reservations.close(self, gang, Outcome.INVALIDATED, conflict)  # nothing placed yet: place nothing
        if (not conflict and self.gangs.reserved_for(pod.uid) is None
                and self.gangs.phase(gang) is Phase.WAITING):
            reservations.reserve(self, gang)
        held = self.gangs.reserved_for(pod.uid)
        if held is not None:
            if held.node in names:
                other = f"gang {gang.key}: this member's GPUs are reserved on {held.node}"
                return [held.node], {n: other for n in names if n != held.node}
            return [], dict.fromkeys(names, f"gang {gang.key}: this member's GPUs are reserved on {held.node}, "
                                            "which kube-scheduler's own filters did not pass")
        if conflict:
            return [], dict.fromkeys(names, conflict)
        if self.gangs.phase(gang) is Phase.COMPLETE:
            return None
        return [], dict.fromkeys(names, self._gang_reason(gang))

    def _left_gang(self, pod: PodRequest) -> None:
        """A pending member filtered without its gang's label (labels are mutable) left that gang."""
        gang = self.gangs.gang_of(pod.uid)
        if gang is not None and gang.key != GangKey.of(pod) and pod.uid not in gang.bound:
            self.on_forgotten(pod.uid)

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
        if not fits_somewhere and self.may_reclaim(pod):
            self.wait_for_reclaim(pod)
        elif self.waiting_for_reclaim.pop(pod.uid, None) is not None:
            self.journal.forget(pod.uid)

    def may_reclaim(self, pod: PodRequest) -> bool:
        """A single pod asking for GPUs, of a team that stays within its guarantee with it (reclaim rule 1),
        not bound already (a bound pod filtered again waits for nothing)."""
        return (self.quotas.enabled and pod.gang is None and pod.wants_gpu and bool(pod.uid)
                and pod.uid not in self.books.allocations
                and self.quotas.within_guarantee(self.quotas.team_of(pod), self.ask(pod)))

    def wait_for_reclaim(self, pod: PodRequest) -> None:
        """Note a pod that fits nowhere now (the caller checked `may_reclaim`) as waiting for reclaim."""
        if pod.uid in self.waiting_for_reclaim:
            return
        self.waiting_for_reclaim[pod.uid] = pod
        self.journal.pod(pod, reclaim=True)
        while len(self.waiting_for_reclaim) > WAITING_FOR_RECLAIM_LIMIT:  # pods never released: oldest go
            self.journal.forget(self.waiting_for_reclaim.pop(next(iter(self.waiting_for_reclaim))).uid)

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
        self.taken[uid] = gang.reservation.id
        self.gangs.take(uid)
        return held, ""

    def drop_held(self, uid: str) -> Allocation | None:
        """Take a reserved member out of its reservation and its held grant out of the books (its
        record is about to be restored in its place); None if it is not reserved."""
        return reservations.drop_held(self, uid)

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
            reservations.close(self, gang, Outcome.COMPLETE, "every member bound")

    def on_released(self, alloc: Allocation) -> None:
        """A bound pod left the books (it ended, was deleted or evicted)."""
        self.taken.pop(alloc.uid, None)
        self.quotas.uncharge(alloc.uid)
        gang = self.gangs.unbound(alloc)
        if gang is None:
            return
        if gang.reservation is not None:
            reservations.close(self, gang, Outcome.INVALIDATED, f"bound member {alloc.key} left before the gang was complete")
        reservations.tidy(self, gang)

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
            reservations.close(self, gang, Outcome.INVALIDATED, f"member {who} left before it was bound")
        reservations.tidy(self, gang)

    def give_back(self, alloc: Allocation) -> bool:
        """Undo the bind of a reserved member whose commit failed; False if it was not one."""
        return reservations.give_back(self, alloc)

    def on_node_changed(self, name: str, *, rewritten: bool) -> None:
        """A node was rewritten (its grants re-applied by the engine), taken out of service, or removed."""
        reservations.node_changed(self, name, rewritten=rewritten)

    # ------------------------------------------------------------------ preempt
    def victim_rule(self, pod: PodRequest) -> Callable[[Sequence[str]], list[str]]:
        """/preempt: which of kube-scheduler's victims on a node `pod` may take (`reclaim.victim_rule`)."""
        standings = self.quotas.standings(self.quotas.capacity(self.state))
        ask = reclaim.ReclaimAsk(pod.key, self.quotas.team_of(pod), self.ask(pod))
        return reclaim.victim_rule(ask, self.units(), standings, quotas=self.quotas.enabled)

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
    def _size_conflict(self, gang: Gang) -> str:
        sizes = self.gangs.size_conflict(gang)
        if not sizes:
            return ""
        return (f"gang {gang.key}: members disagree on {GANG_SIZE_ANNOTATION} ({', '.join(map(str, sizes))}); "
                "give every member the same size")

    def _gang_reason(self, gang: Gang) -> str:
        conflict = self._size_conflict(gang)
        if conflict:
            return conflict
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
        if self.quotas.config.unit is QuotaUnit.GPU:
            return pod.total_milli
        rows = self.state.live_rows()
        if not len(rows):
            return pod.total_milli
        return int(self.quotas.ask_by_row(self.state, pod, rows, self.tools.models_of(pod)).max())

    def _team_of(self, alloc: Allocation) -> str:
        return self.quotas.team_of_record(alloc.team, alloc.namespace)

    def charge_of(self, alloc: Allocation) -> int:
        return self.quotas.grant_charge(self.state, self.state.index.get(alloc.node), alloc.slots, alloc.milli)

    def units(self) -> list[reclaim.Unit]:
        def charge(uid: str) -> int:
            c = self.quotas.charge_of(uid)
            return c.milli if c else 0
        return reclaim.units_of(self.books.allocations.values(), charge, self._team_of)


def _seconds(value: float) -> str:
    return f"{value:g}"
