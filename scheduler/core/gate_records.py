"""Gang and quota state as plain records, so a `--cluster` extender's state file can keep it.

The allocations are journaled by the extender itself (`bind` / `release` lines); this module
describes everything else the gatekeeper must know after a restart to answer exactly as before:
the pending pods it tracks (gang members, pods waiting for reclaim), open reservations, gang
sizes, broken gangs and the history of ended reservations. Records are JSON-ready dicts with a
`kind`; `fold` replays a sequence of them into the state they describe (last word wins), which
the gatekeeper then applies on top of the restored allocations.

Kinds: pod, forget, size, problem, reserve, rekey, close, broken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from scheduler.core.allocation import Allocation
from scheduler.core.gangs import Ended, GangKey, Outcome, Reservation
from scheduler.core.pod_record import pod_from_record, pod_to_record
from scheduler.core.request import PodRequest

if TYPE_CHECKING:
    from scheduler.core.gatekeeper import Gatekeeper


class Journal:
    """Collects records as the gatekeeper changes; an adapter drains and stores them.

    Off until an adapter turns it on (`enabled = True`), so an engine nobody journals keeps
    nothing. It remembers which pods it has recorded, so a pod is written once, not per filter,
    and again only when its request changed (annotations such as the gang size are mutable).
    """

    def __init__(self) -> None:
        self.enabled = False
        self._records: list[dict[str, Any]] = []
        self._written: dict[str, tuple[PodRequest, bool]] = {}
        """UID -> the request last written, and whether it waits for reclaim."""

    def drain(self) -> list[dict[str, Any]]:
        out, self._records = self._records, []
        return out

    def _add(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._records.append(record)

    def pod(self, pod: PodRequest, *, reclaim: bool = False) -> None:
        if not self.enabled:
            return
        written = self._written.get(pod.uid)
        if written is not None:
            if written[0] == pod:
                return
            reclaim = reclaim or written[1]
        self._written[pod.uid] = (pod, reclaim)
        self._add({"kind": "pod", "pod": pod_to_record(pod), "reclaim": reclaim})

    def forget(self, uid: str) -> None:
        if self._written.pop(uid, None) is not None:
            self._add({"kind": "forget", "uid": uid})

    def bound(self, uid: str) -> None:
        """A recorded pod was bound: it is no longer pending (its bind is journaled by the extender)."""
        self.forget(uid)

    def reserve(self, reservation: Reservation) -> None:
        if self.enabled:  # building the record costs as much as planning: only when someone keeps it
            self._add(reserve_record(reservation))

    def rekey(self, gang: GangKey, old: str, new: str) -> None:
        self._add({"kind": "rekey", "gang": _key(gang), "old": old, "new": new})

    def close(self, ended: Ended) -> None:
        self._add(close_record(ended))

    def broken(self, gang: GangKey, reason: str) -> None:
        self._add({"kind": "broken", "gang": _key(gang), "reason": reason})

    def problem(self, gang: GangKey, reason: str) -> None:
        """Why the gang's last plan failed (a reservation clears it)."""
        self._add(problem_record(gang, reason))


def problem_record(gang: GangKey, reason: str) -> dict[str, Any]:
    return {"kind": "problem", "gang": _key(gang), "reason": reason}


def reserve_record(r: Reservation) -> dict[str, Any]:
    return {"kind": "reserve", "gang": _key(r.gang), "id": r.id, "size": r.size, "at": r.reserved_at,
            "deadline": r.deadline, "nodes": list(r.nodes), "zones": list(r.zones), "racks": list(r.racks),
            "members": [_allocation_record(r.members[u]) for u in sorted(r.members)]}


_ALLOCATION_FIELDS = tuple(f.name for f in fields(Allocation))


def _allocation_record(alloc: Allocation) -> dict[str, Any]:
    """`Allocation.to_record`, without asdict's deep copies (a reservation may hold thousands)."""
    record = {name: getattr(alloc, name) for name in _ALLOCATION_FIELDS}
    for name in ("gpu_uuids", "slots", "gpu_memory_mib"):
        record[name] = list(record[name])
    record["extra"] = dict(record["extra"])
    return record


def close_record(e: Ended) -> dict[str, Any]:
    return {"kind": "close", "gang": _key(e.gang), "id": e.id, "outcome": e.outcome.value, "reason": e.reason,
            "at": e.at, "bound": e.bound}


def ended_of(record: Mapping[str, Any]) -> Ended:
    return Ended(gang_of(record), int(record["id"]), Outcome(record["outcome"]), record["reason"],
                 float(record["at"]), int(record["bound"]))


def gang_of(record: Mapping[str, Any]) -> GangKey:
    namespace, name = record["gang"]
    return GangKey(namespace, name)


def _key(gang: GangKey) -> list[str]:
    return [gang.namespace, gang.name]


@dataclass
class Folded:
    """What a sequence of records amounts to."""

    pods: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """UID -> pod record, in first-seen order."""
    reclaim: set[str] = field(default_factory=set)
    sizes: dict[GangKey, int] = field(default_factory=dict)
    reservations: dict[GangKey, dict[str, Any]] = field(default_factory=dict)
    broken: dict[GangKey, str] = field(default_factory=dict)
    problems: dict[GangKey, str] = field(default_factory=dict)
    history: list[Ended] = field(default_factory=list)


def fold(records: Iterable[Mapping[str, Any]]) -> Folded:
    """Replay records in order. Raises ValueError (or KeyError/TypeError) on a malformed one."""
    out = Folded()
    for record in records:
        kind = record["kind"]
        if kind == "pod":
            uid = record["pod"]["uid"]
            out.pods[uid] = record["pod"]
            if record.get("reclaim"):
                out.reclaim.add(uid)
        elif kind == "forget":
            out.pods.pop(record["uid"], None)
            out.reclaim.discard(record["uid"])
        elif kind == "size":
            out.sizes[gang_of(record)] = int(record["size"])
        elif kind == "reserve":
            gang = gang_of(record)
            out.reservations[gang] = {**record, "members": [dict(m) for m in record["members"]]}
            out.sizes[gang] = int(record["size"])
            out.broken.pop(gang, None)
            out.problems.pop(gang, None)
        elif kind == "rekey":
            held = out.reservations.get(gang_of(record))
            for member in held["members"] if held else []:
                if member["uid"] == record["old"]:
                    member["uid"] = record["new"]
        elif kind == "close":
            gang = gang_of(record)
            if out.reservations.get(gang, {}).get("id") == record["id"]:
                del out.reservations[gang]
            out.history.append(ended_of(record))
        elif kind == "broken":
            out.broken[gang_of(record)] = record["reason"]
        elif kind == "problem":
            if record["reason"]:
                out.problems[gang_of(record)] = record["reason"]
            else:
                out.problems.pop(gang_of(record), None)
        else:
            raise ValueError(f"unknown record kind {kind!r}")
    return out


def size_record(gang: GangKey, size: int) -> dict[str, Any]:
    return {"kind": "size", "gang": _key(gang), "size": size}


def snapshot(gates: Gatekeeper) -> list[dict[str, Any]]:
    """Records that rebuild `gates` (with the allocations, which the caller journals itself)."""
    journal = Journal()
    journal.enabled = True
    for gang in gates.gangs:
        for pod in sorted(gang.pending.values(), key=lambda p: p.uid):
            journal.pod(pod)
    for uid in sorted(gates.waiting_for_reclaim):
        journal.pod(gates.waiting_for_reclaim[uid], reclaim=True)
    records = journal.drain()
    records += [close_record(e) for e in gates.gangs.history]
    for gang in gates.gangs:
        size = gates.gangs.size(gang)
        if size is not None:
            records.append(size_record(gang.key, size))
        if gang.reservation is not None:
            records.append(reserve_record(gang.reservation))
        if gang.broken:
            records.append({"kind": "broken", "gang": _key(gang.key), "reason": gang.broken})
        if gang.problem and gang.reservation is None:
            records.append(problem_record(gang.key, gang.problem))
    return records


def restore(gates: Gatekeeper, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Apply what `records` amount to on top of the allocations already restored in the books.

    Returns what did not fit back into the books (a reservation whose GPUs changed meanwhile);
    the records are kept regardless, as allocations are.
    """
    folded = fold(records)
    allocations = gates.books.allocations
    problems: list[str] = []
    for uid, record in folded.pods.items():
        if uid in allocations:
            continue
        pod = pod_from_record(record)
        gates.books.observe(pod)
        gates.journal.pod(pod, reclaim=uid in folded.reclaim)
        if pod.gang is not None:
            gates.gangs.observe(pod, at=gates.current_time())  # idle from the restart on
        if uid in folded.reclaim:
            gates.waiting_for_reclaim[uid] = pod
    for key, size in folded.sizes.items():
        gates.gangs.note_size(key, size)
    gates.gangs.history.extend(folded.history)
    for key, record in sorted(folded.reservations.items()):
        held = {m["uid"]: Allocation.from_record(m) for m in record["members"] if m["uid"] not in allocations}
        gang = gates.gangs.gang(key)
        for uid, alloc in held.items():
            row = gates.state.index.get(alloc.node)
            problem = gates.state.restore(row, alloc.grant) if row is not None else "node unknown"
            if problem:
                problems.append(f"reservation of {alloc.key} on {alloc.node}: {problem}")
            gates.quotas.charge(uid, alloc.team, gates.charge_of(alloc), reserved=True)
        reservation = gates.gangs.open(gang, held, at=float(record["at"]), deadline=float(record["deadline"]),
                                       nodes=record["nodes"], zones=record["zones"], racks=record["racks"],
                                       size=int(record["size"]), id=int(record["id"]))
        if not reservation.members:  # every member was bound; the close line was lost in a crash
            gates.gangs.close(gang, Outcome.COMPLETE, "every member bound", at=float(record["at"]))
    for key, reason in folded.broken.items():
        gang = gates.gangs.get(key)
        if gang is not None and gang.bound and gang.reservation is None:
            gang.broken = reason
    for key, reason in folded.problems.items():
        gang = gates.gangs.get(key)
        if gang is not None and gang.reservation is None:
            gang.problem = reason
    for gang in list(gates.gangs):
        gates.gangs.tidy(gang)
    return problems
