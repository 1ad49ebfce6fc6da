"""select_reclaim_victims and allowed_victims: the reclaim rules as a table of cases.

Units are built by hand: team, milli-units, bind sequence (age), nodes, borrowed. Standings
give each team's guarantee and usage; `fits_on` says how many milli a node must free.
"""

from __future__ import annotations

import pytest

from scheduler.core.quotas import Standing, Team
from scheduler.core.reclaim import ReclaimAsk, Unit, allowed_victims, beyond_guarantee, select_reclaim_victims


def unit(name: str, team: str, milli: int, sequence: int, node: str = "n0", *, borrowed: bool = True,
         gang: str = "", size: int = 1) -> Unit:
    uids = tuple(f"{name}-{i}" for i in range(size)) if gang else (name,)
    return Unit(uids, tuple(f"{team}/{u}" for u in uids), team, milli, sequence, (node,), borrowed, gang)


def standing(name: str, guaranteed: int, used: int, fair: float | None = None, weight: float = 1.0) -> Standing:
    return Standing(Team(name, guaranteed, None, weight), used, 0, guaranteed if fair is None else fair)


def needs(free_by_node: dict[str, int], milli: int):
    """fits_on for a pod of `milli` on nodes with `free_by_node` milli free before evictions."""
    def fits_on(node, victims):
        return free_by_node.get(node, 0) + sum(v.milli for v in victims if node in v.nodes) >= milli
    return fits_on


ASK = ReclaimAsk("nlp/p", "nlp", 8000)
NLP = standing("nlp", 16000, 0)


def victims_of(units, standings, *, free=None, milli=8000, ask=ASK):
    plan = select_reclaim_victims(ask, units, {s.team.name: s for s in standings}, fits_on=needs(free or {}, milli))
    return [u.uids[0] for u in plan.victims] if plan.victims else plan.reason


@pytest.mark.parametrize(("units", "standings", "expected"), [
    # vision: guaranteed 16, uses 32 (v0..v3, 8 each). v2 and v3 lie beyond the guarantee; v3 is newest.
    ([unit(f"v{i}", "vision", 8000, i) for i in range(4)], [NLP, standing("vision", 16000, 32000)], ["v3"]),
    # The same, but only v0 and v1 are marked borrowed: those are within the guarantee, so none.
    ([unit(f"v{i}", "vision", 8000, i, borrowed=i < 2) for i in range(4)], [NLP, standing("vision", 16000, 32000)],
     "no other team is borrowing beyond its guarantee"),
    # Two borrowing teams: cv is further above its fair share (per weight) than ml.
    ([unit("ml0", "ml", 8000, 5), unit("cv0", "cv", 8000, 1)],
     [NLP, standing("ml", 0, 8000, fair=6000), standing("cv", 0, 8000, fair=2000)], ["cv0"]),
    # Weights matter: ml is 2000 over with weight 0.5 (4000 per weight), cv 3000 over with weight 1.
    ([unit("ml0", "ml", 8000, 5), unit("cv0", "cv", 8000, 1)],
     [NLP, standing("ml", 0, 8000, fair=6000, weight=0.5), standing("cv", 0, 8000, fair=5000)], ["ml0"]),
    # Fewest victims: n1 needs one eviction, n0 two (newest first would start on n0).
    ([unit("a", "cv", 4000, 9, "n0"), unit("b", "cv", 4000, 8, "n0"), unit("c", "cv", 8000, 1, "n1")],
     [NLP, standing("cv", 0, 16000)], ["c"]),
    # A gang is one unit: evicting it frees what all its members hold.
    ([unit("g", "cv", 8000, 3, gang="cv/g", size=2), unit("s", "cv", 4000, 7)],
     [NLP, standing("cv", 0, 12000)], ["g-0"]),
    # Reprieve: taking newest-first gives [small, big]; the big one alone is enough.
    ([unit("big", "cv", 8000, 1), unit("small", "cv", 2000, 9)], [NLP, standing("cv", 0, 10000)], ["big"]),
    # A team that would itself borrow may not reclaim.
    ([unit("v0", "vision", 8000, 1)], [standing("nlp", 4000, 0), standing("vision", 0, 8000)],
     "team nlp would be above its guarantee, so it may not reclaim"),
    # The asking team's own pods are never its victims.
    ([unit("n0", "nlp", 8000, 1)], [standing("nlp", 16000, 8000)], "no other team is borrowing beyond its guarantee"),
], ids=["newest borrowed", "never within guarantee", "furthest above fair share", "by weight", "fewest victims",
        "gangs whole", "reprieve", "borrower may not reclaim", "not its own team"])
def test_reclaim_rules(units, standings, expected):
    assert victims_of(units, standings) == expected


def test_a_unit_is_beyond_its_teams_guarantee_only_if_older_units_already_fill_it():
    # guarantee 10: units of 6, 4, 4 (oldest first): 6 within, 4 fills exactly, the last 4 beyond.
    units = [unit("a", "cv", 6000, 1), unit("b", "cv", 4000, 2), unit("c", "cv", 4000, 3)]
    assert [u.uids[0] for u in beyond_guarantee(units, lambda team: 10000)] == ["c"]


@pytest.mark.parametrize(("proposed", "asker", "quotas", "kept"), [
    (["g-0"], "nlp", False, []),  # half a gang is never a victim
    (["g-0", "g-1"], "nlp", False, ["g-0", "g-1"]),
    (["v3", "stranger"], "nlp", True, ["v3", "stranger"]),  # a pod outside the books is kube-scheduler's call
    (["v0", "v3"], "nlp", True, ["v3"]),  # v0 is within vision's guarantee
    (["v3"], "vision", True, ["v3"]),  # a team's own borrowed pod, by priority
], ids=["partial gang", "whole gang", "unknown pod", "within guarantee", "own borrowed pod"])
def test_the_preempt_verb_keeps_only_allowed_victims(proposed, asker, quotas, kept):
    units = [unit(f"v{i}", "vision", 8000, i) for i in range(4)] + [unit("g", "cv", 8000, 9, gang="cv/g", size=2)]
    standings = {"nlp": NLP, "vision": standing("vision", 16000, 32000), "cv": standing("cv", 0, 8000)}
    assert allowed_victims(ReclaimAsk("x/p", asker, 8000), proposed, units, standings, quotas=quotas) == kept


def test_a_borrowing_team_cannot_take_another_teams_pods_through_preempt():
    units = [unit("v3", "vision", 8000, 3)]
    standings = {"nlp": standing("nlp", 4000, 4000), "vision": standing("vision", 0, 8000)}
    assert allowed_victims(ReclaimAsk("nlp/p", "nlp", 8000), ["v3"], units, standings, quotas=True) == []
