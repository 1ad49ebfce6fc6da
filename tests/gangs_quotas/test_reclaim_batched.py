"""`select_reclaim_victims` asks about many nodes at once (`fits_on_each`, one vectorised filter
per round); it must choose exactly what the node-by-node loop it replaced chose (kept here as the
reference), whatever the predicate."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.quotas import Standing, Team
from scheduler.core.reclaim import (
    ReclaimAsk,
    ReclaimPlan,
    Unit,
    _Reversed,
    _take_until,
    candidates,
    select_reclaim_victims,
)

NODES = ("n0", "n1", "n2", "n3")
TEAMS = ("cv", "ml", "nlp")


@st.composite
def scenarios(draw):
    """Mostly borrowed units of cv and ml on four nodes; nlp (the asker) mostly within its guarantee."""
    units = []
    for i in range(draw(st.integers(0, 10))):
        team = draw(st.sampled_from(TEAMS[:2]))
        nodes = tuple(dict.fromkeys(draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=2))))
        uids = tuple(f"u{i}-{k}" for k in range(len(nodes)))
        units.append(Unit(uids, tuple(f"{team}/{u}" for u in uids), team, draw(st.sampled_from([1000, 2000, 4000])),
                          draw(st.integers(0, 20)), nodes, draw(st.sampled_from([True, True, True, False])),
                          f"{team}/g{i}" if len(nodes) > 1 else ""))
    standings = {t: Standing(Team(t, draw(st.sampled_from([0, 0, 2000])), None, 1.0), draw(st.integers(0, 20000)),
                             0, draw(st.sampled_from([0.0, 4000.0]))) for t in TEAMS[:2]}
    standings["nlp"] = Standing(Team("nlp", 16000, None, 1.0), draw(st.sampled_from([0, 4000, 12000])), 0, 16000.0)
    free = {n: draw(st.sampled_from([0, 0, 1000, 3000])) for n in NODES}
    return units, standings, free, draw(st.sampled_from([1000, 4000, 8000])), draw(st.booleans())


def predicate(free: dict[str, int], milli: int, monotone: bool):
    def fits_on(node, victims):
        freed = free[node] + sum(v.milli for v in victims if node in v.nodes)
        if monotone:
            return freed >= milli
        digest = hashlib.sha256(f"{node}|{sorted(u for v in victims for u in v.uids)}".encode()).digest()
        return digest[0] % 3 == 0  # any deterministic answer, monotone or not
    return fits_on


def reference(ask, units, standings, fits_on) -> ReclaimPlan:
    """The single-pod path as it was: every node in name order, one `fits_on` call at a time."""
    standing = standings.get(ask.team)
    if (standing.used_milli if standing else 0) + ask.milli > (standing.team.guaranteed_milli if standing else 0):
        return ReclaimPlan(ask, reason=f"team {ask.team} would be above its guarantee, so it may not reclaim")
    order = candidates(ask, units, standings)
    if not order:
        return ReclaimPlan(ask, reason="no other team is borrowing beyond its guarantee")
    best = None
    for node in sorted({n for u in order for n in u.nodes}):
        here = [u for u in order if node in u.nodes]
        if fits_on(node, ()):
            return ReclaimPlan(ask, node=node, reason="fits without evictions")
        taken = _take_until(here, lambda victims, node=node: fits_on(node, victims))
        if not taken:
            continue
        rank = (sum(len(u.uids) for u in taken), sum(u.milli for u in taken),
                _Reversed(sorted((u.age for u in taken), reverse=True)), node)
        if best is None or rank < best[0]:
            best = (rank, node, taken)
    if best is None:
        return ReclaimPlan(ask, reason="no node has room even after evicting every candidate there")
    return ReclaimPlan(ask, best[2], node=best[1])


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_asking_every_node_at_once_chooses_what_asking_one_by_one_chooses(scenario):
    units, standings, free, milli, monotone = scenario
    fits_on = predicate(free, milli, monotone)
    rounds: list[int] = []

    def fits_on_each(asks):
        rounds.append(len(asks))
        return [fits_on(node, victims) for node, victims in asks]

    ask = ReclaimAsk("nlp/p", "nlp", milli)
    expected = reference(ask, units, standings, fits_on)
    assert select_reclaim_victims(ask, units, standings, fits_on=fits_on) == expected
    assert select_reclaim_victims(ask, units, standings, fits_on=fits_on, fits_on_each=fits_on_each) == expected
    assert len(rounds) <= 1 + max((sum(1 for u in units if n in u.nodes) for n in NODES), default=0)
