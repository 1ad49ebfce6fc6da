"""Reclaim: which running pods to evict so that a pending pod of a team under its guarantee fits.

Pure and deterministic: `select_reclaim_victims` decides on values handed in (units, standings
and a fit predicate the engine builds on a what-if); an adapter evicts (the Kubernetes
reclaimer, through the Eviction API). `allowed_victims` applies the same rules to the victim
lists kube-scheduler proposes on `/preempt`.

The rules, in the order they apply:
  1. Only a team that stays within its guarantee once the pod is placed may reclaim: a team that
     would itself be borrowing takes nothing from anyone.
  2. A victim is a *unit*: a pod, or a whole gang. A gang member is evicted with its whole gang
     or not at all.
  3. A unit is a candidate only if it belongs to another team, every pod in it is marked
     borrowed, and it lies wholly beyond its team's guarantee: with the team's units ordered
     oldest first (`Unit.age`), the units before it already use the whole
     guarantee (so what a team borrows is always its newest pods, counted now; the bind-time
     mark alone is not enough: a team whose older pods ended is back within its guarantee). Any set of candidates can then go without pushing a team below its guarantee,
     so a pod within its team's guarantee is never a victim.
  4. Candidates are taken in this order: the team furthest above its weighted fair share first
     (`quotas.Standing.distance`), then the newest unit first (bind sequence, then creation
     time for records restored from the cluster, then UID).
  5. A single pod: on each node holding candidates, take that node's candidates in order until
     the pod fits there, then reprieve every victim it does not need (last taken first). Of
     those nodes: the fewest victim pods, then the fewest milli-units evicted, then the newest
     victims, then the node name.
  6. A gang: take candidates anywhere, in order, until the whole gang plans; reprieve likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.core.allocation import Allocation
from scheduler.core.quotas import Standing


@dataclass(frozen=True)
class Unit:
    """What reclaim evicts as one: a pod, or every bound member of a gang."""

    uids: tuple[str, ...]
    pods: tuple[str, ...]
    """namespace/name of each pod, in `uids` order."""
    team: str
    milli: int
    """Quota charge of the whole unit."""
    sequence: int
    """Bind sequence of its first pod: its age (0 for records restored from a cluster)."""
    nodes: tuple[str, ...]
    borrowed: bool
    """Every pod in it was marked borrowed at bind."""
    gang: str = ""
    created: str = ""
    """Creation time (RFC 3339) of its oldest pod: the age of records restored with sequence 0."""

    @property
    def age(self) -> tuple:
        """Older first: bind order, then creation time, then UID."""
        return (self.sequence, self.created, self.uids)

    @property
    def label(self) -> str:
        return f"gang {self.gang}" if self.gang else self.pods[0]


FitsOnEach = Callable[[Sequence[tuple[str, Sequence[Unit]]]], Sequence[bool]]
"""[(node, victims), ...] -> for each, does the pod fit on that node once those victims are gone?"""


@dataclass(frozen=True)
class ReclaimAsk:
    """A pending pod (or gang) of `team` that would be charged `milli`."""

    label: str
    team: str
    milli: int
    gang: bool = False


@dataclass(frozen=True)
class ReclaimPlan:
    ask: ReclaimAsk
    victims: tuple[Unit, ...] = ()
    node: str | None = None
    """For a single pod, the node the evictions make room on."""
    reason: str = ""
    """Why there is no plan; "" when there is one."""

    @property
    def uids(self) -> tuple[str, ...]:
        return tuple(u for unit in self.victims for u in unit.uids)


def units_of(allocations: Iterable[Allocation], charge_of: Callable[[str], int],
             team_of: Callable[[Allocation], str]) -> list[Unit]:
    """Group the books into units: gang members by (namespace, gang), every other pod alone."""
    groups: dict[tuple[str, str], list[Allocation]] = {}
    units: list[Unit] = []
    for alloc in allocations:
        if alloc.gang:
            groups.setdefault((alloc.namespace, alloc.gang), []).append(alloc)
        else:
            units.append(_unit([alloc], charge_of, team_of(alloc), ""))
    for (namespace, gang), members in groups.items():
        units.append(_unit(sorted(members, key=lambda a: (a.sequence, a.uid)), charge_of, team_of(members[0]),
                           f"{namespace}/{gang}"))
    return sorted(units, key=lambda u: u.age)


def _unit(members: Sequence[Allocation], charge_of: Callable[[str], int], team: str, gang: str) -> Unit:
    return Unit(tuple(a.uid for a in members), tuple(a.key for a in members), team,
                sum(charge_of(a.uid) for a in members), min(a.sequence for a in members),
                tuple(dict.fromkeys(a.node for a in members)), all(a.borrowed for a in members), gang,
                min(a.created for a in members))


def beyond_guarantee(units: Sequence[Unit], guaranteed: Callable[[str], int]) -> list[Unit]:
    """Rule 3's second half: the units each team could lose and stay at or above its guarantee."""
    used: dict[str, int] = {}
    out = []
    for unit in sorted(units, key=lambda u: u.age):
        before = used.get(unit.team, 0)
        if before >= guaranteed(unit.team):
            out.append(unit)
        used[unit.team] = before + unit.milli
    return out


def candidates(ask: ReclaimAsk, units: Sequence[Unit], standings: Mapping[str, Standing]) -> list[Unit]:
    """Rules 2-4: the units reclaim may take for `ask`, in the order it takes them."""
    def guaranteed(team: str) -> int:
        standing = standings.get(team)
        return standing.team.guaranteed_milli if standing else 0

    eligible = [u for u in beyond_guarantee(units, guaranteed) if u.team != ask.team and u.borrowed]

    def distance(unit: Unit) -> float:
        standing = standings.get(unit.team)
        return standing.distance if standing else 0.0

    newest_first = sorted(eligible, key=lambda u: u.age, reverse=True)
    return sorted(newest_first, key=lambda u: -distance(u))  # stable: newest first within a distance


def select_reclaim_victims(ask: ReclaimAsk, units: Sequence[Unit], standings: Mapping[str, Standing], *,
                           fits_on: Callable[[str, Sequence[Unit]], bool] | None = None,
                           fits: Callable[[Sequence[Unit]], bool] | None = None,
                           fits_on_each: FitsOnEach | None = None) -> ReclaimPlan:
    """The evictions that make room for `ask` (see the module docstring), or a plan with a reason.

    A single pod passes `fits_on(node, victims)`: does it fit on `node` once `victims` are gone?
    and may pass `fits_on_each([(node, victims), ...])`, the same question for many nodes at
    once (one vectorised filter instead of one per node; the answer is the same).
    A gang passes `fits(victims)`: does the whole gang plan once `victims` are gone? All are
    what-ifs the caller runs on a copy; they must not change the books.
    """
    standing = standings.get(ask.team)
    guarantee = standing.team.guaranteed_milli if standing else 0
    used = standing.used_milli if standing else 0
    if used + ask.milli > guarantee:
        return ReclaimPlan(ask, reason=f"team {ask.team} would be above its guarantee, so it may not reclaim")
    order = candidates(ask, units, standings)
    if not order:
        return ReclaimPlan(ask, reason="no other team is borrowing beyond its guarantee")
    if ask.gang or fits_on is None:
        assert fits is not None, "a gang needs fits(victims)"
        if fits(()):
            return ReclaimPlan(ask, reason="fits without evictions")
        taken = _take_until(order, fits)
        return ReclaimPlan(ask, taken) if taken else ReclaimPlan(ask, reason="evicting every candidate is not enough")
    here: dict[str, list[Unit]] = {}
    for unit in order:
        for node in unit.nodes:
            here.setdefault(node, []).append(unit)
    nodes = sorted(here)
    each = fits_on_each or (lambda asks: [fits_on(node, victims) for node, victims in asks])
    free = [bool(f) for f in each([(node, ()) for node in nodes])]
    if any(free):
        return ReclaimPlan(ask, node=nodes[free.index(True)], reason="fits without evictions")
    best: tuple[tuple, str, tuple[Unit, ...]] | None = None
    for node, taken in _take_until_each(here, each, fits_on).items():
        newest = sorted((u.age for u in taken), reverse=True)
        rank = (sum(len(u.uids) for u in taken), sum(u.milli for u in taken), _Reversed(newest), node)
        if best is None or rank < best[0]:
            best = (rank, node, taken)
    if best is None:
        return ReclaimPlan(ask, reason="no node has room even after evicting every candidate there")
    return ReclaimPlan(ask, best[2], node=best[1])


def _take_until_each(here: Mapping[str, Sequence[Unit]], each: FitsOnEach,
                     fits_on: Callable[[str, Sequence[Unit]], bool]) -> dict[str, tuple[Unit, ...]]:
    """`_take_until` on every node at once: round k asks `each` about every node still short of
    room with its first k candidates; then the reprieves, node by node. Nodes never with room are left out."""
    taken: dict[str, list[Unit]] = {node: [] for node in here}
    short = list(here)
    enough: dict[str, list[Unit]] = {}
    k = 0
    while short:
        short = [node for node in short if k < len(here[node])]
        for node in short:
            taken[node].append(here[node][k])
        answers = each([(node, tuple(taken[node])) for node in short]) if short else []
        for node, fits in zip(short, answers, strict=True):
            if fits:
                enough[node] = taken[node]
        short = [node for node, fits in zip(short, answers, strict=True) if not fits]
        k += 1
    out = {}
    for node in sorted(enough):
        chosen = enough[node]
        for unit in reversed(list(chosen)):
            trial = [u for u in chosen if u is not unit]
            if trial and fits_on(node, trial):
                chosen = trial
        out[node] = tuple(chosen)
    return out


def _take_until(order: Sequence[Unit], fits: Callable[[Sequence[Unit]], bool]) -> tuple[Unit, ...]:
    """Candidates in order until `fits`, then without each one it does not need (last taken first); () if never."""
    taken: list[Unit] = []
    for unit in order:
        taken.append(unit)
        if fits(taken):
            break
    else:
        return ()
    for unit in reversed(list(taken)):
        trial = [u for u in taken if u is not unit]
        if trial and fits(trial):
            taken = trial
    return tuple(taken)


def allowed_victims(ask: ReclaimAsk, proposed: Sequence[str], units: Sequence[Unit],
                    standings: Mapping[str, Standing], *, quotas: bool) -> list[str]:
    """Of kube-scheduler's victims on one node, those the rules allow, in its order (see `victim_rule`)."""
    return victim_rule(ask, units, standings, quotas=quotas)(proposed)


def victim_rule(ask: ReclaimAsk, units: Sequence[Unit], standings: Mapping[str, Standing], *,
                quotas: bool) -> Callable[[Sequence[str]], list[str]]:
    """The /preempt rule for one preemptor, prepared once for all of kube-scheduler's candidate nodes.

    Gangs: a member stays only if every bound member of its gang is proposed too. With quotas:
    a victim must be a candidate by rule 3; one of another team only if the preemptor's team
    stays within its guarantee (rule 1). A pod outside gpusched's books is left to kube-scheduler.
    """
    unit_of = {uid: unit for unit in units for uid in unit.uids}
    standing = standings.get(ask.team)
    may_reclaim = standing is not None and standing.used_milli + ask.milli <= standing.team.guaranteed_milli
    evictable: set[int] = set()
    if quotas:
        def guaranteed(team: str) -> int:
            s = standings.get(team)
            return s.team.guaranteed_milli if s else 0
        evictable = {id(u) for u in beyond_guarantee(units, guaranteed) if u.borrowed}

    def allowed(proposed: Sequence[str]) -> list[str]:
        listed = set(proposed)
        out = []
        for uid in proposed:
            unit = unit_of.get(uid)
            if unit is None:
                out.append(uid)
                continue
            if not set(unit.uids) <= listed:
                continue
            if quotas and (id(unit) not in evictable or (unit.team != ask.team and not may_reclaim)):
                continue
            out.append(uid)
        return out

    return allowed


@dataclass(frozen=True)
class _Reversed:
    """Orders by `value` descending (the newest victims win a tie)."""

    value: list

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value
