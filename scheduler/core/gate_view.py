"""Gangs, team quotas and the reclaim plan as plain data: the `/state` sections an operator reads.

Derived only from the gatekeeper's books, in a fixed order, with no "now" in it (deadlines are
absolute), so an extender restarted from its state file renders the same sections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.core.gangs import Gang, Phase
from scheduler.core.reclaim_plans import current_plans

if TYPE_CHECKING:
    from scheduler.core.gatekeeper import Gatekeeper


def gates_view(gates: Gatekeeper) -> dict[str, Any]:
    return {"gangs": [_gang(gates, g) for g in gates.gangs],
            "gangHistory": [{"gang": str(e.gang), "reservation": e.id, "outcome": e.outcome.value, "reason": e.reason,
                             "at": e.at, "bound": e.bound} for e in gates.gangs.history],
            "teams": teams_view(gates),
            "reclaim": [{"for": p.ask.label, "team": p.ask.team, "askMilli": p.ask.milli, "node": p.node,
                         "victims": [{"pods": list(u.pods), "uids": list(u.uids), "team": u.team, "milli": u.milli,
                                      **({"gang": u.gang} if u.gang else {})} for u in p.victims],
                         "reason": p.reason} for p in current_plans(gates)],
            "gangEvictions": [{"gang": str(key), "uids": list(uids), "reason": reason}
                              for key, uids, reason in gates.evictions()]}


def teams_view(gates: Gatekeeper) -> dict[str, Any]:
    quotas = gates.quotas
    capacity = quotas.capacity(gates.state)
    standings = quotas.standings(capacity)
    return {"enabled": quotas.enabled, "unit": quotas.config.unit.value, "capacityMilli": capacity,
            "teams": [{"name": s.team.name, "source": s.team.source, "guaranteedMilli": s.team.guaranteed_milli,
                       "maxMilli": s.team.max_milli, "weight": s.team.weight, "usedMilli": s.used_milli,
                       "reservedMilli": s.reserved_milli, "borrowedMilli": s.borrowed_milli,
                       "fairShareMilli": round(s.fair_milli)} for s in standings.values()]}


def _gang(gates: Gatekeeper, gang: Gang) -> dict[str, Any]:
    phase = gates.gangs.phase(gang)
    out: dict[str, Any] = {
        "gang": str(gang.key), "phase": phase.value, "size": gates.gangs.size(gang),
        "pending": sorted(p.key for p in gang.pending.values()),
        "bound": sorted(gates.books.allocations[u].key for u in gang.bound if u in gates.books.allocations),
    }
    if phase is Phase.WAITING and gang.problem and len(gang.pending) >= (gates.gangs.needed(gang) or 0):
        out["problem"] = gang.problem
    if gang.broken:
        out["broken"] = gang.broken
    r = gang.reservation
    if r is not None:
        out["reservation"] = {
            "id": r.id, "reservedAt": r.reserved_at, "deadline": r.deadline, "nodes": list(r.nodes),
            "zones": list(r.zones), "racks": list(r.racks),
            "members": [{"pod": a.key, "uid": a.uid, "node": a.node, "gpus": list(a.gpu_uuids),
                         "borrowed": a.borrowed} for a in sorted(r.members.values(), key=lambda a: a.key)]}
    return out
