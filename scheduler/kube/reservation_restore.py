"""Rebuilding gang reservations from the annotations on their pending members (no I/O).

The cache hands `ReservationRestorer.pending` every pending pod of our scheduler that carries
`gpusched.io/reservation`. Once a reservation's pieces are all there (pending members with the
annotation plus members already bound come to its size, and every piece repeats the same header)
it is restored in the books through the core's journal records, exactly as a state file restores
one. A reservation whose pieces never all arrive (a crash while writing it, before any member was
bound) is not restored: its members are pending like any others and the gang is planned again.
One past its deadline is not restored either.

The annotation is written by gpusched alone; one forged by a pod's author is checked before it is
believed (on the pod it names, for the gang the pod belongs to, a grant of exactly what the pod
asks for, a deadline within `MAX_RESERVATION_S`), and it holds nothing until every other piece of
its reservation agrees with it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from scheduler.core import contract as c
from scheduler.core.allocation import Allocation
from scheduler.core.engine import Engine
from scheduler.core.gangs import GangKey
from scheduler.core.pod_record import pod_to_record
from scheduler.core.request import PodRequest
from scheduler.kube.reservations import HEADER, MAX_RESERVATION_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Piece:
    header: Mapping[str, Any]
    member: Mapping[str, Any]
    pod: PodRequest


class ReservationRestorer:
    """Rebuilds reservations from the annotations the cache sees on pending pods (no I/O)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        self._pieces: dict[tuple[GangKey, int], dict[str, _Piece]] = {}
        self._of_uid: dict[str, tuple[GangKey, int]] = {}
        self.restored = 0

    def pending(self, pod: PodRequest, annotations: Mapping[str, str]) -> None:
        """A pending pod was seen; `annotations` are its gpusched.io/ ones."""
        raw = annotations.get(c.RESERVATION_ANNOTATION)
        # A late watch event can show a member pending after its bind entered the books: not a piece.
        bound = pod.uid in self.engine.allocations
        piece = _piece(raw, pod, now=self.clock()) if raw and not bound else None
        if piece is None:
            self.gone(pod.uid)
            return
        key = (GangKey(*piece.header["gang"]), int(piece.header["id"]))
        if self._of_uid.get(pod.uid, key) != key:
            self.gone(pod.uid)
        self._of_uid[pod.uid] = key
        self._pieces.setdefault(key, {})[pod.uid] = piece
        self._try(key)

    def gone(self, uid: str) -> None:
        """The pod was bound, deleted or is no longer pending."""
        key = self._of_uid.pop(uid, None)
        if key is not None:
            pieces = self._pieces.get(key, {})
            pieces.pop(uid, None)
            if not pieces:
                self._pieces.pop(key, None)

    def _try(self, key: tuple[GangKey, int]) -> None:
        gang_key, rid = key
        pieces = self._pieces[key]
        gates = self.engine.gates
        gang = gates.gangs.get(gang_key)
        if gang is not None and gang.reservation is not None:
            if gang.reservation.id == rid:
                self._drop(key)  # our own, echoed by the watch
            return
        if gang is not None and any(e.id == rid for e in gates.gangs.history if e.gang == gang_key):
            self._drop(key)  # it ended here already: pods still showing it are stale
            return
        header = next(iter(pieces.values())).header
        if any(p.header != header for p in pieces.values()):
            return  # pieces that disagree are not one reservation
        bound = len(gang.bound) if gang is not None else 0
        if len(pieces) + bound < int(header["size"]):
            return  # not all here yet (or never all written: the gang is planned again)
        if float(header["deadline"]) <= self.clock():
            self._drop(key)
            return
        records: list[dict[str, Any]] = [{"kind": "pod", "pod": pod_to_record(p.pod)} for p in pieces.values()]
        records.append({"kind": "reserve", **header, "members": [dict(p.member) for p in pieces.values()]})
        problems = gates.restore_records(records)
        for problem in problems:
            log.warning("gang %s: reservation %d restored with a discrepancy: %s", gang_key, rid, problem)
        self.restored += 1
        log.info("gang %s: reservation %d restored from its pods (%d members pending, %d bound)", gang_key, rid,
                 len(pieces), bound)
        self._drop(key)

    def _drop(self, key: tuple[GangKey, int]) -> None:
        for uid in self._pieces.pop(key, {}):
            self._of_uid.pop(uid, None)


def _piece(raw: str, pod: PodRequest, *, now: float) -> _Piece | None:
    """The annotation, if it is well formed and agrees with the pod it is on; else None."""
    try:
        value = orjson.loads(raw)
        header = {k: value[k] for k in HEADER}
        member = dict(value["member"])
        alloc = Allocation.from_record(member)
        gang = GangKey(*header["gang"])
        at, deadline, size = float(header["at"]), float(header["deadline"]), int(header["size"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if GangKey.of(pod) != gang:
        return None
    if (alloc.uid, alloc.namespace, alloc.name) != (pod.uid, pod.namespace, pod.name):
        return None
    whole = not pod.is_share
    if (len(alloc.gpu_uuids) != (pod.gpus if whole else 1) or alloc.share == whole
            or (not whole and alloc.milli != pod.gpu_milli)):
        return None  # a grant the pod does not ask for
    if not (math.isfinite(at) and math.isfinite(deadline) and 0 < deadline - at <= MAX_RESERVATION_S
            and at <= now + 60 and 0 < size <= 100_000):
        return None
    return _Piece(header, member, pod)
