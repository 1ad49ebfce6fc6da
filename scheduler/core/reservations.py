"""Holding gang plans in the books: reserving a whole plan in one step, and ending it in one step.

Functions of the gatekeeper's books (`gatekeeper.Gatekeeper`): `reserve` plans a gang that has all
its members pending and holds every grant (or none); `close` ends a reservation and releases what
it still holds; `give_back` returns a member whose bind could not be committed; `node_changed`
keeps reservations true to their nodes; `adopt_namesake` hands a re-created member its place.
Every change is journaled (`gate_records`) for a state file, and counted in `gates.stats`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from scheduler.core.allocation import Allocation
from scheduler.core.gang_planning import plan_gang
from scheduler.core.gangs import Ended, Gang, Outcome
from scheduler.core.quoting import quoted
from scheduler.core.request import PodRequest
from scheduler.core.state import CapacityError

if TYPE_CHECKING:
    from scheduler.core.gatekeeper import Gatekeeper


def reserve(gates: Gatekeeper, gang: Gang) -> None:
    """Plan a gang whose members are all pending, and hold the whole plan in the books.

    1. members: as many pending members as the gang still needs, in planning order;
    2. plan them on a copy of the books, unless nothing changed since this same plan failed;
    3. the plan's charge per team must fit under each team's max;
    4. borrowing is marked member by member, in plan order, as each team passes its guarantee;
    5. every grant is applied, all or none, and charged to its team as reserved;
    6. the reservation is recorded with its deadline, counted and journaled.
    A failure at 2 or 3 (or a deadline time cannot express) becomes the gang's `problem`, which
    its members' filters report. Steps 5 and 6 are one transaction: should anything raise there
    (a bug), every grant, charge and record made so far is undone before the error goes on, so
    the books are as they were and the next filter plans afresh.
    """
    needed = gates.gangs.needed(gang)
    members = gates.gangs.to_plan(gang)
    if not needed or len(members) < needed or gates.gangs.size_conflict(gang):
        return
    state = gates.state
    candidates = gates.gangs.candidates(m.uid for m in members)
    lists = [candidates.get(m.uid) for m in members]
    fingerprint = (state.generation, gates.config_version,
                   tuple((m.uid, id(c)) for m, c in zip(members, lists, strict=True)))
    if gang.attempt is not None and gang.attempt[0] == fingerprint:
        return  # every member's filter would redo the very plan that failed
    gang.attempt = (fingerprint, lists)  # the lists are kept, so their ids cannot be reused meanwhile
    tools = gates.tools
    plan = plan_gang(state, members, candidates=candidates, models_of=tools.models_of, policy_of=tools.policy_of,
                     ctx=tools.context(), topology=gates.gangs.settings.topology,
                     allocate=lambda p, row, slots: tools.allocate(p, row, slots, team=gates.quotas.team_of(p)))
    if isinstance(plan, str):
        set_problem(gates, gang, f"{needed} members do not fit together now: {plan}")
        return
    charges = {a.uid: gates.charge_of(a) for a in plan.placements}
    asks: Counter[str] = Counter()
    for alloc in plan.placements:
        asks[alloc.team] += charges[alloc.uid]
    for team, ask in sorted(asks.items()):
        problem = gates.quotas.over_max(team, ask)
        if problem:
            set_problem(gates, gang, problem)
            return
    running: Counter[str] = Counter()
    held: dict[str, Allocation] = {}
    for alloc in plan.placements:
        running[alloc.team] += charges[alloc.uid]
        held[alloc.uid] = replace(alloc, borrowed=gates.quotas.borrows(alloc.team, running[alloc.team]))
    at = gates.current_time()
    deadline = _deadline(at, gates.gangs.timeout_of(gang))
    if isinstance(deadline, str):
        set_problem(gates, gang, deadline)
        return
    _hold(gates, gang, held, charges, at=at, deadline=deadline, plan=plan)


def _hold(gates: Gatekeeper, gang: Gang, held: dict[str, Allocation], charges: dict[str, int], *,
          at: float, deadline: float, plan) -> None:
    """Steps 5 and 6 of `reserve`, all or nothing."""
    state = gates.state
    problem = gang.problem
    applied: list[Allocation] = []
    charged: list[str] = []
    reservation = None
    try:
        for alloc in held.values():
            state.apply(state.index[alloc.node], alloc.grant)
            applied.append(alloc)
        for uid, alloc in held.items():
            gates.quotas.charge(uid, alloc.team, charges[uid], reserved=True)
            charged.append(uid)
        reservation = gates.gangs.open(gang, held, at=at, deadline=deadline,
                                       nodes=plan.nodes, zones=plan.zones, racks=plan.racks)
        gates.journal.reserve(reservation)
    except BaseException as e:
        if reservation is not None:
            gates.gangs.discard(gang, reservation)
        gang.problem = problem
        for uid in charged:
            gates.quotas.uncharge(uid)
        for alloc in applied:
            state.release(state.index[alloc.node], alloc.grant)
        gang.attempt = None
        if isinstance(e, CapacityError):  # the plan was made on a copy of these very books: a bug, never a verdict
            set_problem(gates, gang, f"internal error holding the plan: {e}")
            return
        raise
    gates.stats["reserved"] += 1


def _deadline(at: float, timeout_s: int) -> float | str:
    """When a reservation made at `at` ends, or why no time can say so (timeouts are bounded where
    they are read; this keeps an unbounded one from failing after the grants are held)."""
    try:
        deadline = at + timeout_s
    except OverflowError:
        deadline = float("inf")
    if not math.isfinite(deadline) or timeout_s < 1:
        return f"gang timeout of {quoted(timeout_s)} seconds is out of range"
    return deadline


def close(gates: Gatekeeper, gang: Gang, outcome: Outcome, reason: str, *,
          keep: frozenset[str] | set[str] = frozenset()) -> Ended:
    """End a reservation: release what it still holds (except `keep`, already gone from the books)."""
    reservation = gates.gangs.close(gang, outcome, reason, at=gates.current_time())
    assert reservation is not None
    for uid, alloc in reservation.members.items():
        row = gates.state.index.get(alloc.node)
        if row is not None and uid not in keep:
            gates.state.release(row, alloc.grant)
        gates.quotas.uncharge(uid)
    gates.stats[outcome.value] += 1
    ended = gates.gangs.history[-1]
    gates.journal.close(ended)
    if gang.broken:
        gates.stats["broken"] += 1
        gates.journal.broken(gang.key, gang.broken)
    tidy(gates, gang)
    return ended


def drop_held(gates: Gatekeeper, uid: str) -> Allocation | None:
    """A reserved member bound elsewhere (another replica bound it): release its hold and keep its
    charge, which the restored record settles (`on_recorded`, which also closes the reservation
    once its last member is bound)."""
    held = gates.gangs.take(uid)
    if held is None:
        return None
    row = gates.state.index.get(held.node)
    if row is not None:
        gates.state.release(row, held.grant)
    return held


def give_back(gates: Gatekeeper, alloc: Allocation) -> bool:
    """Undo the bind of a reserved member whose commit failed; False if it was not one.

    The grant stays in the books: back in the reservation it came from, or, when that
    reservation completed with this bind, in a new reservation for just this member.
    """
    reservation_id = gates.taken.pop(alloc.uid, None)
    if reservation_id is None:
        return False
    pending = replace(alloc, sequence=0)
    gang = gates.gangs.gang_of(alloc.uid)
    if gates.gangs.give_back(pending, reservation_id):
        gates.quotas.unsettle(alloc.uid)
        return True
    if gang is None or gang.reservation is not None or gang.broken:
        return False
    gates.gangs.unbound(alloc)
    gates.quotas.unsettle(alloc.uid)
    at = gates.current_time()
    reservation = gates.gangs.open(gang, {alloc.uid: pending}, at=at,
                                  deadline=at + gates.gangs.timeout_of(gang), nodes=(alloc.node,))
    gates.journal.reserve(reservation)
    return True


def node_changed(gates: Gatekeeper, name: str, *, rewritten: bool) -> None:
    """A node was rewritten (its grants re-applied by the engine), taken out of service, or removed."""
    row = gates.state.index.get(name)
    for gang in list(gates.gangs):
        reservation = gang.reservation
        here = [a for a in reservation.members.values() if a.node == name] if reservation else []
        if not here:
            continue
        spec = gates.state.specs[row] if row is not None else None
        if spec is None:
            close(gates, gang, Outcome.INVALIDATED, f"node {name} left the cluster", keep={a.uid for a in here})
        elif spec.unavailable_reason:
            close(gates, gang, Outcome.INVALIDATED, f"node {name} became unavailable: {spec.unavailable_reason}")
        elif rewritten:
            lost = {a.uid for a in here if gates.state.check(row, a.grant)}
            for alloc in here:
                if alloc.uid not in lost:
                    gates.state.apply(row, alloc.grant)
            if lost:
                close(gates, gang, Outcome.INVALIDATED, f"node {name} changed under the plan", keep=lost)


def adopt_namesake(gates: Gatekeeper, pod: PodRequest) -> None:
    """A reserved member re-created under its name: the new pod takes its place, or the plan ends."""
    old = gates.gangs.namesake(pod)
    if old is None:
        return
    gang = gates.gangs.gang_of(old)
    assert gang is not None
    before = gang.pending.get(old)
    if before is not None and before.shape == pod.shape and before.policy == pod.policy:
        charge = gates.quotas.uncharge(old)
        gates.gangs.rekey(old, pod)
        if charge is not None:
            gates.quotas.charge(pod.uid, charge.team, charge.milli, reserved=True)
        gates.journal.rekey(gang.key, old, pod.uid)
    else:
        close(gates, gang, Outcome.INVALIDATED, f"member {pod.key} was re-created with a different request")


def set_problem(gates: Gatekeeper, gang: Gang, reason: str) -> None:
    """Why the gang's last plan failed (journaled when it changes)."""
    if gang.problem != reason:
        gang.problem = reason
        gates.journal.problem(gang.key, reason)


def tidy(gates: Gatekeeper, gang: Gang) -> None:
    """Forget a gang with nothing left (and the reason its last plan failed)."""
    if gang.empty and gang.problem:
        gates.journal.problem(gang.key, "")
    gates.gangs.tidy(gang)
