"""Gangs: which pending pods belong together, what each gang still needs, and its reservation.

Owns: gang membership (pending members learned from filter calls, bound members from the
books), the size a gang needs (`gpusched.io/gang-size`, or a PodGroup's `minMember` handed in
by an adapter), the reservation of a complete plan, and why past reservations ended. Must not
know: HTTP, Kubernetes, the clock (times are handed in), how a plan is made (`gang_planning`),
charged (`quotas`) or held in the books (`gatekeeper` applies and releases the grants).

A gang is in one of four phases, computed from its data (never stored):

    waiting    fewer members pending than it still needs, or its size is not known yet
    reserved   a complete plan holds capacity for every member not yet bound
    complete   at least `size` members are bound; further members schedule one by one
    broken     a reservation ended after some members were bound; those members are listed
               for eviction, and nothing is planned for the gang until they are gone

Rules kept here: a reservation covers every member the gang still needs, or does not exist;
members leave a reservation only by being bound (or by the whole reservation ending). Members
must agree on `gpusched.io/gang-size` (`size_conflict`): the size a gang was reserved or placed
with counts as a member's word, so a late member cannot silently grow a placed gang.

Nothing is kept for ever: reservations wait in a deadline queue (`due` costs nothing while none
is due, however many gangs wait), and a pending member that nobody has filtered for
`GangSettings.forget_idle_members_after(its timeout)` is handed out by `idle` to be forgotten
(a `--cluster` extender hears of no deletions: without this, gangs that never complete would
pile up). kube-scheduler retries an unschedulable pod at least every 5 minutes, below the
10-minute floor, so a member whose pod still exists is filtered again long before that.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from scheduler.core.allocation import Allocation
from scheduler.core.deadlines import Deadlines
from scheduler.core.gang_planning import Topology, member_order
from scheduler.core.request import DEFAULT_GANG_TIMEOUT_S, MAX_GANG_TIMEOUT_S, PodRequest

_INTERNED = 64


class Phase(Enum):
    WAITING = "waiting"
    RESERVED = "reserved"
    COMPLETE = "complete"
    BROKEN = "broken"


class Outcome(Enum):
    """How a reservation ended."""

    COMPLETE = "complete"
    """Every reserved member was bound."""
    EXPIRED = "expired"
    """Not fully bound within the gang timeout."""
    INVALIDATED = "invalidated"
    """A member left, or a node under the plan changed, before the gang was complete."""


@dataclass(frozen=True, order=True)
class GangKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, pod: PodRequest) -> GangKey | None:
        return cls(pod.namespace, pod.gang.name) if pod.gang else None

    @classmethod
    def of_allocation(cls, alloc: Allocation) -> GangKey | None:
        return cls(alloc.namespace, alloc.gang) if alloc.gang else None


@dataclass(frozen=True)
class GangSettings:
    """Gang behaviour an operator configures (`--config`: rackLabel, gangs.defaultTimeoutSeconds)."""

    topology: Topology = field(default_factory=Topology)
    default_timeout_s: int = DEFAULT_GANG_TIMEOUT_S
    history: int = 64
    """Ended reservations kept for /state."""
    idle_floor_s: int = 600
    """A pending member is forgotten after twice its gang timeout without a filter, never sooner
    than this (above kube-scheduler's 5-minute retry of unschedulable pods)."""

    def __post_init__(self) -> None:
        if not 1 <= self.default_timeout_s <= MAX_GANG_TIMEOUT_S:
            raise ValueError(f"gangs.defaultTimeoutSeconds must be a positive integer, at most {MAX_GANG_TIMEOUT_S}")

    def forget_idle_members_after(self, timeout_s: int) -> float:
        """Seconds a pending member of a gang with this timeout may go unfiltered before it is forgotten."""
        return float(max(2 * timeout_s, self.idle_floor_s))


@dataclass
class Reservation:
    """A complete plan held in the books. `members` shrinks as members are bound."""

    id: int
    gang: GangKey
    size: int
    reserved_at: float
    deadline: float
    members: dict[str, Allocation]
    """UID -> prospective allocation (sequence 0) of each member not bound yet."""
    nodes: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    racks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ended:
    """Why a reservation is gone: for /state, metrics and the gang's members' reasons."""

    gang: GangKey
    id: int
    outcome: Outcome
    reason: str
    at: float
    bound: int


@dataclass
class Gang:
    key: GangKey
    pending: dict[str, PodRequest] = field(default_factory=dict)
    bound: dict[str, None] = field(default_factory=dict)
    reservation: Reservation | None = None
    broken: str = ""
    problem: str = ""
    """Why the last plan failed ("" when it did not, or none was tried)."""
    attempt: tuple | None = None
    """(fingerprint, candidate lists) of the last plan: books generation, config version, members."""

    @property
    def declared_size(self) -> int | None:
        sizes = [p.gang.size for p in self.pending.values() if p.gang and p.gang.size]
        return max(sizes) if sizes else None

    @property
    def from_pod_group(self) -> bool:
        return any(p.gang and p.gang.from_pod_group for p in self.pending.values())

    @property
    def empty(self) -> bool:
        return not (self.pending or self.bound or self.reservation or self.broken)


class GangBook:
    """Every gang the engine knows, keyed by (namespace, name)."""

    def __init__(self, settings: GangSettings | None = None) -> None:
        self.settings = settings or GangSettings()
        self._gangs: dict[GangKey, Gang] = {}
        self._pod_groups: dict[GangKey, int] = {}
        self._member_of: dict[str, GangKey] = {}
        """UID -> gang, for pending, reserved and bound members."""
        self._sizes: dict[GangKey, int] = {}
        """Sizes recorded with a reservation or learned from members, kept while the gang lives."""
        self._candidates: dict[str, np.ndarray] = {}
        self._interned: OrderedDict[bytes, np.ndarray] = OrderedDict()
        """Distinct candidate lists, shared by the members that report the same one (most recent kept)."""
        self.history: deque[Ended] = deque(maxlen=self.settings.history)
        self._next_id = 0
        self._deadlines: Deadlines[GangKey] = Deadlines()
        """Gangs with a reservation, by its deadline."""
        self._idle: Deadlines[str] = Deadlines()
        """Pending members, by when they are forgotten unless filtered again."""

    # ------------------------------------------------------------ membership
    def set_pod_group(self, namespace: str, name: str, min_member: int | None) -> None:
        """A scheduler-plugins PodGroup's `minMember` (None: the PodGroup is gone)."""
        key = GangKey(namespace, name)
        if min_member is None:
            self._pod_groups.pop(key, None)
        elif min_member < 1:
            raise ValueError(f"PodGroup {key}: minMember must be positive, got {min_member}")
        else:
            self._pod_groups[key] = min_member

    def observe(self, pod: PodRequest, candidates: np.ndarray | None = None, *, at: float | None = None,
                replaced: list[str] | None = None) -> Gang:
        """Remember a pending member (and the nodes it may use), seen at time `at` (None: not timed,
        so never forgotten for idling). A re-created pod replaces its namesake; the namesake's UID
        is appended to `replaced` (for the journal to forget it too)."""
        key = GangKey.of(pod)
        assert key is not None and pod.gang is not None
        gang = self._gangs.setdefault(key, Gang(key))
        if pod.uid not in gang.bound and at is not None:
            timeout = pod.gang.timeout_s or self.settings.default_timeout_s
            self._idle.set(pod.uid, at + self.settings.forget_idle_members_after(timeout))
        if pod.uid not in gang.bound:
            for uid, other in list(gang.pending.items()):
                if other.name == pod.name and uid != pod.uid and not self.reserved_for(uid):
                    self.forget(uid)  # re-created under the same name: the old UID is gone
                    if replaced is not None:
                        replaced.append(uid)
            gang.pending[pod.uid] = pod
            self._member_of[pod.uid] = key
            size = gang.declared_size
            if size is not None and not self.size_conflict(gang):
                self._sizes[key] = size
        if candidates is not None and pod.uid not in gang.bound:
            self._candidates[pod.uid] = self._intern(candidates)
        return gang

    def namesake(self, pod: PodRequest) -> str | None:
        """The UID of a reserved member with `pod`'s name but another UID (the pod was re-created)."""
        gang = self._gangs.get(GangKey.of(pod)) if pod.gang else None
        if gang is None or gang.reservation is None:
            return None
        return next((u for u, a in gang.reservation.members.items() if a.name == pod.name and u != pod.uid), None)

    def rekey(self, old_uid: str, pod: PodRequest) -> Allocation | None:
        """Hand a re-created pod its namesake's place in the reservation."""
        gang = self.gang_of(old_uid)
        if gang is None or gang.reservation is None or old_uid not in gang.reservation.members:
            return None
        held = replace(gang.reservation.members.pop(old_uid), uid=pod.uid)
        gang.reservation.members[pod.uid] = held
        gang.pending.pop(old_uid, None)
        self._member_of.pop(old_uid, None)
        self._candidates.pop(old_uid, None)
        self._idle.discard(old_uid)
        self._member_of[pod.uid] = gang.key
        return held

    def forget(self, uid: str) -> Gang | None:
        """A pending member left (deleted before it was bound). Returns its gang."""
        key = self._member_of.get(uid)
        gang = self._gangs.get(key) if key else None
        self._candidates.pop(uid, None)
        self._idle.discard(uid)
        if gang is None or uid in gang.bound:
            return gang
        gang.pending.pop(uid, None)
        if not (gang.reservation and uid in gang.reservation.members):
            self._member_of.pop(uid, None)
        return gang

    def bound(self, alloc: Allocation) -> Gang | None:
        key = GangKey.of_allocation(alloc)
        if key is None:
            return None
        gang = self._gangs.setdefault(key, Gang(key))
        gang.pending.pop(alloc.uid, None)
        gang.bound[alloc.uid] = None
        self._member_of[alloc.uid] = key
        self._candidates.pop(alloc.uid, None)
        self._idle.discard(alloc.uid)
        return gang

    def unbound(self, alloc: Allocation) -> Gang | None:
        """A bound member left the books (ended, evicted, or its bind was undone)."""
        key = GangKey.of_allocation(alloc)
        gang = self._gangs.get(key) if key else None
        if gang is None:
            return None
        gang.bound.pop(alloc.uid, None)
        if not (gang.reservation and alloc.uid in gang.reservation.members):
            self._member_of.pop(alloc.uid, None)
        if gang.broken and not gang.bound:
            gang.broken = ""
        return gang

    def tidy(self, gang: Gang) -> None:
        """Drop a gang that no longer has members, a reservation or a grievance."""
        if gang.empty and self._gangs.get(gang.key) is gang:
            del self._gangs[gang.key]
            self._sizes.pop(gang.key, None)

    def gang(self, key: GangKey) -> Gang:
        return self._gangs.setdefault(key, Gang(key))

    def note_size(self, key: GangKey, size: int) -> None:
        """A size known from a record (restored gangs whose members are all bound declare none)."""
        self._sizes[key] = size

    # ----------------------------------------------------------------- views
    def get(self, key: GangKey) -> Gang | None:
        return self._gangs.get(key)

    def gang_of(self, uid: str) -> Gang | None:
        key = self._member_of.get(uid)
        return self._gangs.get(key) if key else None

    def __iter__(self) -> Iterator[Gang]:
        return iter([self._gangs[k] for k in sorted(self._gangs)])

    def size(self, gang: Gang) -> int | None:
        """minMember for a PodGroup gang, else the largest `gpusched.io/gang-size` its members declared."""
        if gang.key in self._pod_groups:
            return self._pod_groups[gang.key]
        if gang.from_pod_group:
            return None
        return gang.declared_size or self._sizes.get(gang.key)

    def size_conflict(self, gang: Gang) -> tuple[int, ...]:
        """The sizes a gang's members declare, sorted, when they disagree; () when they agree.

        Pending members' `gpusched.io/gang-size`, plus the size the gang was reserved or placed
        with while it has a reservation or bound members. PodGroup gangs take minMember instead.
        """
        declared = {p.gang.size for p in gang.pending.values() if p.gang and p.gang.size}
        if gang.reservation is not None or gang.bound:
            placed = gang.reservation.size if gang.reservation is not None else self._sizes.get(gang.key)
            if placed and not gang.from_pod_group and gang.key not in self._pod_groups:
                declared.add(placed)
        return tuple(sorted(declared)) if len(declared) > 1 else ()

    def needed(self, gang: Gang) -> int | None:
        size = self.size(gang)
        return None if size is None else max(0, size - len(gang.bound))

    def phase(self, gang: Gang) -> Phase:
        if gang.reservation is not None:
            return Phase.RESERVED
        if gang.broken:
            return Phase.BROKEN
        size = self.size(gang)
        if size is not None and len(gang.bound) >= size:
            return Phase.COMPLETE
        return Phase.WAITING

    def timeout_of(self, gang: Gang) -> int:
        """The shortest `gpusched.io/gang-timeout-seconds` among its members, else the default."""
        asked = [p.gang.timeout_s for p in gang.pending.values() if p.gang and p.gang.timeout_s]
        return min(asked) if asked else self.settings.default_timeout_s

    def to_plan(self, gang: Gang) -> list[PodRequest]:
        """The pending members a plan covers: as many as needed, in planning order."""
        needed = self.needed(gang) or 0
        return sorted(gang.pending.values(), key=member_order)[:needed]

    def candidates(self, uids) -> dict[str, np.ndarray]:
        return {u: self._candidates[u] for u in uids if u in self._candidates}

    def reserved_for(self, uid: str) -> Allocation | None:
        gang = self.gang_of(uid)
        if gang is None or gang.reservation is None:
            return None
        return gang.reservation.members.get(uid)

    def reservations(self) -> list[Reservation]:
        return [g.reservation for g in self if g.reservation is not None]

    # ---------------------------------------------------------- reservations
    def open(self, gang: Gang, members: dict[str, Allocation], *, at: float, deadline: float,
             nodes=(), zones=(), racks=(), size: int | None = None, id: int | None = None) -> Reservation:
        """Record a reservation (the caller has put its grants in the books)."""
        if id is None:
            self._next_id += 1
            id = self._next_id
        self._next_id = max(self._next_id, id)
        size = size if size is not None else (self.size(gang) or len(members))
        gang.reservation = Reservation(id, gang.key, size, at, deadline, dict(members), tuple(nodes), tuple(zones),
                                       tuple(racks))
        gang.broken = ""
        gang.problem = ""
        self._deadlines.set(gang.key, deadline)
        self._sizes[gang.key] = size
        for uid in members:
            self._member_of[uid] = gang.key
        return gang.reservation

    def discard(self, gang: Gang, reservation: Reservation) -> None:
        """Undo `open` of a reservation that could not be held (no outcome, no history)."""
        if gang.reservation is not reservation:
            return
        gang.reservation = None
        for uid in reservation.members:
            if uid not in gang.pending and uid not in gang.bound:
                self._member_of.pop(uid, None)

    def take(self, uid: str) -> Allocation | None:
        """A reserved member is being bound: its prospective allocation leaves the reservation."""
        gang = self.gang_of(uid)
        if gang is None or gang.reservation is None:
            return None
        return gang.reservation.members.pop(uid, None)

    def give_back(self, alloc: Allocation, reservation_id: int) -> bool:
        """Undo `take` (the bind could not be committed) if that reservation is still open."""
        gang = self.gang_of(alloc.uid)
        if gang is None or gang.reservation is None or gang.reservation.id != reservation_id:
            return False
        gang.reservation.members[alloc.uid] = alloc
        gang.bound.pop(alloc.uid, None)
        return True

    def close(self, gang: Gang, outcome: Outcome, reason: str, *, at: float) -> Reservation | None:
        """End the gang's reservation; the caller releases the members still in it."""
        reservation = gang.reservation
        if reservation is None:
            return None
        gang.reservation = None
        self._deadlines.discard(gang.key)
        for uid in reservation.members:
            if uid not in gang.pending and uid not in gang.bound:
                self._member_of.pop(uid, None)
        if outcome is not Outcome.COMPLETE and gang.bound:
            gang.broken = reason
        self.history.append(Ended(gang.key, reservation.id, outcome, reason, at, len(gang.bound)))
        return reservation

    def due(self, now: float) -> list[Gang]:
        """Gangs whose reservation deadline has passed, in key order. The caller closes each of
        them (`close`): they have left the deadline queue."""
        due = []
        for key in self._deadlines.pop_due(now):
            gang = self._gangs.get(key)
            if gang is not None and gang.reservation is not None:
                due.append(gang)
        return sorted(due, key=lambda g: g.key)

    def idle(self, now: float) -> list[str]:
        """Pending members nobody has filtered for too long, to be forgotten (`forget`), in UID
        order. A member its gang's reservation holds is not idle: it is looked at again once
        the reservation has had as long."""
        out = []
        for uid in self._idle.pop_due(now):
            gang = self.gang_of(uid)
            if gang is None or uid not in gang.pending:
                continue
            if gang.reservation is not None and uid in gang.reservation.members:
                pod = gang.pending[uid]
                timeout = (pod.gang.timeout_s if pod.gang else None) or self.settings.default_timeout_s
                self._idle.set(uid, gang.reservation.deadline + self.settings.forget_idle_members_after(timeout))
                continue
            out.append(uid)
        return sorted(out)

    def _intern(self, rows: np.ndarray) -> np.ndarray:
        key = rows.tobytes()
        known = self._interned.get(key)
        if known is None:
            known = np.array(rows, np.int64)
            known.setflags(write=False)
            self._interned[key] = known
            while len(self._interned) > _INTERNED:
                self._interned.popitem(last=False)  # members keep their arrays; only sharing is lost
        else:
            self._interned.move_to_end(key)
        return known
