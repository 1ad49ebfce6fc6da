"""The current reclaim plan: for every pod (or gang) of a team under its guarantee that fits
nowhere, the evictions that would make room, by `reclaim.select_reclaim_victims`.

The plans are cumulative, like one scheduling pass: pods waiting for reclaim are taken in UID
order, then waiting gangs by name; each plan is made on a what-if copy of the books in which the
earlier plans' victims are gone and their pods placed, and the teams' usage moved accordingly.
So two waiting pods never count on the same victim, and a team stops reclaiming once its
planned pods reach its guarantee. Nothing here changes the books.

Consumers: `GET /state` (`reclaim`), the metrics (evictions proposed) and the Kubernetes
reclaimer, which evicts each plan's UIDs (whole gangs included) through the Eviction API and
leaves the placing to the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from scheduler.core import filters
from scheduler.core.gang_planning import GangPlan, plan_gang
from scheduler.core.gangs import Gang, Phase
from scheduler.core.quotas import Standing
from scheduler.core.reclaim import ReclaimAsk, ReclaimPlan, Unit, select_reclaim_victims
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

if TYPE_CHECKING:
    from scheduler.core.gatekeeper import Gatekeeper

FITS_ALREADY = "fits without evictions"


def current_plans(gates: Gatekeeper) -> list[ReclaimPlan]:
    """One plan per waiting pod and per waiting gang; empty without quotas.

    Planning costs seconds on a large full cluster, and /metrics, GET /state and the reclaimer all
    ask: the plans are kept until the books, the configuration or who is waiting changes.
    """
    if not gates.quotas.enabled:
        return []
    key = (gates.state.generation, gates.config_version, tuple(sorted(gates.waiting_for_reclaim)),
           tuple((gang.key, tuple(m.uid for m in _blocked_members(gates, gang))) for gang in gates.gangs))
    if gates.plans_memo is not None and gates.plans_memo[0] == key:
        return list(gates.plans_memo[1])
    plans = _plan(gates)
    gates.plans_memo = (key, plans)
    return list(plans)


def _plan(gates: Gatekeeper) -> list[ReclaimPlan]:
    trial = gates.state.copy()
    units = gates.units()
    standings = gates.quotas.standings(gates.quotas.capacity(trial))
    plans = []
    asks: list[tuple[ReclaimAsk, list[PodRequest]]] = []
    for uid in sorted(gates.waiting_for_reclaim):
        pod = gates.waiting_for_reclaim[uid]
        asks.append((ReclaimAsk(pod.key, gates.quotas.team_of(pod), gates.ask(pod)), [pod]))
    for gang in gates.gangs:
        members = _blocked_members(gates, gang)
        if members:
            team = gates.quotas.team_of(members[0])
            asks.append((ReclaimAsk(f"gang {gang.key}", team, sum(gates.ask(m) for m in members), gang=True), members))
    for ask, pods in asks:
        if ask.gang:
            plan = select_reclaim_victims(ask, units, standings,
                                          fits=lambda victims, pods=pods: _gang_plan(gates, trial, pods, victims) is not None)
        elif _fits_anywhere(gates, trial, pods[0]):
            # Free room a victim-less node offers (a victim evicted earlier has left it, say): the
            # pod needs no eviction, only kube-scheduler's next try. Nodes with candidates alone
            # were looked at before, so each round evicted one more pod for the same ask.
            plan = ReclaimPlan(ask, reason="fits without evictions")
        else:
            plan = select_reclaim_victims(
                ask, units, standings,
                fits_on=lambda node, victims, pod=pods[0]: _fits_on(gates, trial, pod, node, victims),
                fits_on_each=lambda asks, pod=pods[0]: _fits_on_each(gates, trial, pod, asks))
        plans.append(plan)
        if plan.victims or plan.reason == FITS_ALREADY:
            _apply(gates, trial, plan, pods)
            units = [u for u in units if u not in plan.victims]
            standings = _moved(standings, plan)
    return plans


def _blocked_members(gates: Gatekeeper, gang: Gang) -> list[PodRequest]:
    """The members of a complete waiting gang whose plan failed for room (not for its team's max)."""
    if gates.gangs.phase(gang) is not Phase.WAITING or not gang.problem or gang.problem.startswith("team "):
        return []
    members = gates.gangs.to_plan(gang)
    return members if members and len(members) >= (gates.gangs.needed(gang) or 0) else []


def _grants_of(gates: Gatekeeper, victims: Sequence[Unit], node: str | None = None):
    allocations = gates.books.allocations
    for unit in victims:
        for uid in unit.uids:
            alloc = allocations.get(uid)
            if alloc is not None and (node is None or alloc.node == node):
                yield alloc


def _fits_anywhere(gates: Gatekeeper, trial: ClusterState, pod: PodRequest) -> bool:
    rows = slice(0, len(trial.specs))  # removed rows are empty and fit no GPU pod
    return bool(filters.fit(trial, pod, rows, gates.tools.models_of(pod)).fits.any())


def _fits_on(gates: Gatekeeper, trial: ClusterState, pod: PodRequest, node: str, victims: Sequence[Unit]) -> bool:
    row = trial.index.get(node)
    if row is None:
        return False
    grants = [a.grant for a in _grants_of(gates, victims, node)]
    for grant in grants:
        trial.release(row, grant)
    try:
        return bool(filters.fit(trial, pod, np.array([row]), gates.tools.models_of(pod)).fits[0])
    finally:
        for grant in grants:
            trial.restore(row, grant)


def _fits_on_each(gates: Gatekeeper, trial: ClusterState, pod: PodRequest,
                  asks: Sequence[tuple[str, Sequence[Unit]]]) -> list[bool]:
    """`_fits_on` for many (node, victims) at once: each node's victims released on its own row,
    one vectorised filter over the rows, everything restored."""
    rows = [trial.index.get(node) for node, _ in asks]
    released = []
    for (node, victims), row in zip(asks, rows, strict=True):
        if row is not None:
            for alloc in _grants_of(gates, victims, node):
                trial.release(row, alloc.grant)
                released.append((row, alloc.grant))
    try:
        known = np.array([r for r in rows if r is not None], np.int64)
        fits = iter(filters.fit(trial, pod, known, gates.tools.models_of(pod)).fits.tolist() if len(known) else [])
        return [row is not None and bool(next(fits)) for row in rows]
    finally:
        for row, grant in released:
            trial.restore(row, grant)


def _gang_plan(gates: Gatekeeper, trial: ClusterState, members: list[PodRequest],
               victims: Sequence[Unit]) -> GangPlan | None:
    what_if = trial.copy()
    for alloc in _grants_of(gates, victims):
        row = what_if.index.get(alloc.node)
        if row is not None:
            what_if.release(row, alloc.grant)
    plan = plan_gang(what_if, members, candidates=gates.gangs.candidates(m.uid for m in members),
                     models_of=gates.tools.models_of, policy_of=gates.tools.policy_of, ctx=gates.tools.context(),
                     allocate=lambda p, row, slots: gates.tools.allocate(p, row, slots),
                     topology=gates.gangs.settings.topology)
    return plan if isinstance(plan, GangPlan) else None


def _apply(gates: Gatekeeper, trial: ClusterState, plan: ReclaimPlan, pods: list[PodRequest]) -> None:
    """In the what-if: the victims are gone and the pods placed, for the plans that follow."""
    if plan.ask.gang:
        placed = _gang_plan(gates, trial, pods, plan.victims)
        placements = [(trial.index[a.node], a.grant) for a in placed.placements] if placed else []
    else:
        placements = []
        row = trial.index.get(plan.node) if plan.node else None
        for alloc in _grants_of(gates, plan.victims, plan.node):
            trial.release(row, alloc.grant)
        pod = pods[0]
        fit = filters.fit(trial, pod, np.array([row]), gates.tools.models_of(pod)) if row is not None else None
        if fit is not None and fit.fits[0]:
            slots = gates.tools.policy_of(pod).pick(trial, pod, row, fit.slot_fit[0], gates.tools.context())
            placements = [(row, gates.tools.allocate(pod, row, tuple(int(s) for s in slots)).grant)]
    if plan.ask.gang:
        for alloc in _grants_of(gates, plan.victims):
            victim_row = trial.index.get(alloc.node)
            if victim_row is not None:
                trial.release(victim_row, alloc.grant)
    for row, grant in placements:
        trial.restore(row, grant)


def _moved(standings: dict[str, Standing], plan: ReclaimPlan) -> dict[str, Standing]:
    """Team usage once the plan is carried out: the asking team up, the victims' teams down."""
    delta: dict[str, int] = {plan.ask.team: plan.ask.milli}
    for unit in plan.victims:
        delta[unit.team] = delta.get(unit.team, 0) - unit.milli
    out = dict(standings)
    for team, change in delta.items():
        if team in out:
            out[team] = replace(out[team], used_milli=out[team].used_milli + change)
    return out
