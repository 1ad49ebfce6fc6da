"""Pods whose labels changed, or that are filtered again after their bind, keep the books and the
state file in agreement (found by tests/hostile: the state file restored different books).

Labels and annotations are mutable, and anyone who reaches the extender can repeat a filter.
"""

from __future__ import annotations

from scheduler.core.engine import Engine
from scheduler.core.gangs import GangKey
from tests.gangs_quotas.builders import nodes, teams, worker

NAMES = ["n0", "n1"]


def test_a_pending_member_filtered_without_its_gang_label_leaves_the_gang():
    engine = Engine(nodes(2))
    member = worker("w0", gpus=8).gang("g", 2)
    member.uid = "u"
    engine.filter(member.request(), NAMES)
    solo = worker("w0", gpus=8)
    solo.uid = "u"
    assert engine.filter(solo.request(), NAMES).passed  # an ordinary pod now
    assert engine.gates.gangs.get(GangKey("ml", "g")) is None


def test_a_reserved_member_relabelled_ends_the_reservation():
    engine = Engine(nodes(2))
    members = [worker(f"w{i}", gpus=8).gang("g", 2) for i in range(2)]
    for i, m in enumerate(members):
        m.uid = f"u{i}"
        engine.filter(m.request(), NAMES)
    assert engine.gates.gangs.reservations()
    moved = worker("w0", gpus=8).gang("other", 1)
    moved.uid = "u0"
    engine.filter(moved.request(), NAMES)
    assert engine.gates.gangs.get(GangKey("ml", "g")).reservation is None
    assert engine.gates.gangs.history[-1].reason == "member ml/w0 left before it was bound"


def test_a_bound_pod_filtered_again_does_not_wait_for_reclaim():
    engine = Engine(nodes(1, gpus=1), quotas=teams(vision=(8, 8)))
    bound = worker("p", gpus=1).team("vision")
    bound.uid = "p"
    [node] = engine.filter(bound.request(), ["n0"]).passed
    engine.bind("p", "ml", "p", node)
    engine.filter(bound.request(), ["n0"])  # fits nowhere now (its own GPU is taken), but it is bound
    assert "p" not in engine.gates.waiting_for_reclaim
