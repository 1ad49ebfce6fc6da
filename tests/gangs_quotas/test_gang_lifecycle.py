"""A gang's life in the engine: waiting, reserved, bound, and every way a reservation ends.

In-process against `Engine` (the simulator's path); the HTTP path is in test_gang_scenarios.
"""

from __future__ import annotations

import pytest

from scheduler.core.engine import BindRejected, Engine, EngineSettings
from scheduler.core.gangs import GangKey, GangSettings, Phase
from tests.gangs_quotas.builders import gpu_node, nodes, teams, worker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def engine_of(count=4, *, clock=None, quotas=None, timeout=300) -> Engine:
    return Engine(nodes(count), settings=EngineSettings(gangs=GangSettings(default_timeout_s=timeout)), clock=clock,
                  quotas=quotas)


def gang(name="g", size=2, *, gpus=8, timeout=None, team=None, namespace="ml"):
    out = []
    for i in range(size):
        b = worker(f"{name}-{i}", gpus=gpus, namespace=namespace).gang(name, size, timeout_s=timeout)
        out.append((b.team(team) if team else b).request())
    return out


def filter_all(engine, pods, names=None):
    names = names or [n for n in engine.state.names if n]
    return [engine.filter(p, names) for p in pods]


def reserve(engine, pods):
    answers = filter_all(engine, pods)
    return {p.uid: engine.gates.planned_node(p) for p in pods}, answers


def phase(engine, pod):
    return engine.gates.gangs.phase(engine.gates.gangs.gang_of(pod.uid))


def free_gpus(engine) -> int:
    return int(engine.state.free_milli[engine.state.live_rows()].sum()) // 1000


def test_a_pod_group_member_waits_for_its_size_then_plans():
    engine = engine_of()
    members = [worker(f"w{i}", gpus=8).pod_group("pg").request() for i in range(2)]
    assert filter_all(engine, members)[0].unresolvable["n0"] == (
        "gang ml/pg: size unknown (no PodGroup with minMember known to gpusched)")
    engine.gates.set_pod_group("ml", "pg", 2)
    planned, _ = reserve(engine, members)
    assert all(planned.values())


def test_no_member_binds_without_a_reservation_nor_off_its_planned_node():
    engine = engine_of()
    members = gang(size=3)
    filter_all(engine, members[:2])
    with pytest.raises(BindRejected, match="gang ml/g: 2 of 3 members pending"):
        engine.bind(members[0].uid, "ml", "g-0", "n0")
    planned, _ = reserve(engine, members)
    elsewhere = next(n for n in ("n0", "n1", "n2", "n3") if n != planned[members[0].uid])
    with pytest.raises(BindRejected, match=f"gang ml/g: ml/g-0 is reserved on {planned[members[0].uid]}, not"):
        engine.bind(members[0].uid, "ml", "g-0", elsewhere)
    alloc = engine.bind(members[0].uid, "ml", "g-0", planned[members[0].uid])
    assert alloc.node == planned[members[0].uid] and alloc.sequence == 1


def test_a_reserved_member_scores_and_explains_only_its_planned_node():
    engine = engine_of()
    members = gang()
    planned, _ = reserve(engine, members)
    node = planned[members[0].uid]
    assert [n for n, s in engine.scores(members[0], ["n0", "n1", "n2", "n3"]) if s is not None] == [node]
    verdicts = {v.node: v for v in engine.explain(members[0])}
    assert verdicts[node].fits and len(verdicts[node].gpus) == 8
    assert not verdicts[next(n for n in verdicts if n != node)].fits


def test_a_member_deleted_before_binding_releases_the_whole_reservation(clock):
    engine = engine_of(clock=clock)
    members = gang(size=3)
    reserve(engine, members)
    assert free_gpus(engine) == 8
    engine.release(members[1].uid)
    assert free_gpus(engine) == 32
    ended = engine.gates.gangs.history[-1]
    assert (ended.outcome.value, ended.reason) == ("invalidated", "member ml/g-1 left before it was bound")
    assert phase(engine, members[0]) is Phase.WAITING


def test_a_bound_member_leaving_early_breaks_the_gang_and_lists_the_rest_for_eviction():
    engine = engine_of()
    members = gang(size=3)
    planned, _ = reserve(engine, members)
    for pod in members[:2]:
        engine.bind(pod.uid, "ml", pod.name, planned[pod.uid])
    engine.release(members[0].uid)
    assert phase(engine, members[1]) is Phase.BROKEN
    [(key, uids, reason)] = engine.gates.evictions()
    assert (str(key), uids, reason) == ("ml/g", (members[1].uid,),
                                        "bound member ml/g-0 left before the gang was complete")
    assert free_gpus(engine) == 24  # only g-1 holds GPUs
    engine.release(members[1].uid)  # evicted: the gang is clean and may be planned again
    assert engine.gates.evictions() == []


@pytest.mark.parametrize(("change", "kept"), [
    (lambda e, n: e.upsert_node(e.state.specs[e.state.index[n]]), True),
    (lambda e, n: e.set_node_unavailable(n, "agent heartbeat is stale"), False),
    (lambda e, n: e.remove_node(n), False),
    (lambda e, n: e.upsert_node(gpu_node(n, 4)), False),
], ids=["heartbeat", "unavailable", "removed", "fewer GPUs"])
def test_a_node_change_under_a_plan_keeps_or_releases_it_whole(change, kept):
    engine = engine_of()
    members = gang()
    planned, _ = reserve(engine, members)
    change(engine, planned[members[0].uid])
    assert (engine.gates.gangs.reserved_for(members[1].uid) is not None) is kept
    total = sum(len(s.gpus) for s in engine.state.specs if s is not None)
    assert free_gpus(engine) == total - (16 if kept else 0)


def test_a_failed_commit_gives_the_gpus_back_to_the_gang_not_to_everyone():
    engine = engine_of()
    members = gang()
    planned, _ = reserve(engine, members)
    for pod in members:  # the last bind completes the gang; its commit fails
        engine.bind(pod.uid, "ml", pod.name, planned[pod.uid])
    engine.unbind(members[1].uid)
    assert engine.gates.gangs.reserved_for(members[1].uid).node == planned[members[1].uid]
    assert free_gpus(engine) == 16
    again = engine.bind(members[1].uid, "ml", "g-1", planned[members[1].uid])
    assert again.sequence == 3 and phase(engine, members[0]) is Phase.COMPLETE


def test_a_member_recreated_under_its_name_takes_its_place_or_ends_the_plan():
    engine = engine_of()
    members = gang()
    planned, _ = reserve(engine, members)
    twin = worker("g-1", gpus=8).gang("g", 2)
    twin.uid = "new-uid"
    answer = engine.filter(twin.request(), ["n0", "n1", "n2", "n3"])
    assert answer.passed == [planned[members[1].uid]]
    bigger = worker("g-0", gpus=4).gang("g", 2)
    bigger.uid = "other-uid"
    engine.filter(bigger.request(), ["n0", "n1", "n2", "n3"])
    assert engine.gates.gangs.history[-1].reason == "member ml/g-0 was re-created with a different request"
    [again] = engine.gates.gangs.reservations()  # planned afresh with the new request: 8 + 4 GPUs
    assert sorted(again.members) == ["new-uid", "other-uid"] and free_gpus(engine) == 32 - 12


def test_the_shortest_member_timeout_applies_and_time_comes_from_the_clock(clock):
    engine = engine_of(clock=clock, timeout=600)
    members = [worker("g-0", gpus=8).gang("g", 2, timeout_s=90).request(), *gang(size=2)[1:]]
    reserve(engine, members)
    clock.now += 89
    assert engine.expire() == []
    clock.now += 1
    [ended] = engine.expire()
    assert ended.reason == "reservation expired after 90s with 0 of 2 members bound"


def test_without_a_clock_time_is_what_expire_was_told():
    engine = engine_of(clock=None)
    engine.expire(50.0)
    reserve(engine, gang())
    reservation = engine.gates.gangs.reservations()[0]
    assert (reservation.reserved_at, reservation.deadline) == (50.0, 350.0)
    assert engine.expire(349.0) == [] and len(engine.expire(350.0)) == 1


def test_a_pod_beyond_the_gangs_size_is_told_so():
    engine = engine_of()
    members = [*gang(size=2), worker("g-9", gpus=8).gang("g", 2).request()]
    answers = filter_all(engine, members)
    assert set(answers[2].unresolvable.values()) == {
        "gang ml/g: its reservation holds other members; this pod is beyond the gang's size"}


def test_the_planned_node_must_be_one_kube_scheduler_passed():
    engine = engine_of()
    members = gang()
    engine.filter(members[0], ["n2", "n3"])  # in-tree filters (taints, selectors) passed only these
    answer = engine.filter(members[1], ["n2", "n3"])
    assert sorted([*answer.passed, engine.gates.planned_node(members[0])]) == ["n2", "n3"]
    late = engine.filter(members[0], ["n0", "n1"])  # something changed: its planned node is filtered out now
    assert late.passed == [] and set(late.unresolvable.values()) == {
        f"gang ml/g: this member's GPUs are reserved on {engine.gates.planned_node(members[0])}, which "
        "kube-scheduler's own filters did not pass"}


def test_a_gang_over_its_teams_max_waits_and_its_reservation_counts_against_the_team():
    engine = engine_of(quotas=teams(vision=(8, 16)))
    too_big = gang("big", 3, team="vision")
    answers = filter_all(engine, too_big)
    assert set(answers[2].unresolvable.values()) == {
        "gang ml/big: team vision: 0 GPUs in use + 24 asked would exceed its max of 16"}
    reserve(engine, gang("ok", 2, team="vision"))
    assert engine.gates.quotas.used("vision") == 16000
    single = engine.filter(worker("one", gpus=1).team("vision").request(), ["n0"])
    assert single.unresolvable["n0"] == "team vision: 16 GPUs in use + 1 asked would exceed its max of 16"
    held = [a.borrowed for r in engine.gates.gangs.reservations() for a in r.members.values()]
    assert sorted(held) == [False, True]  # the second 8 GPUs go beyond the 8 guaranteed


def test_a_pending_member_replaced_by_its_recreation_is_forgotten_in_the_journal_too():
    # Found by tests/hostile: the state file brought the old UID back as a second pending member.
    engine = engine_of()
    engine.gates.journal.enabled = True
    old = worker("g-0", gpus=8).gang("g", 3)
    old.uid = "old-uid"
    new = worker("g-0", gpus=8).gang("g", 3)
    new.uid = "new-uid"
    filter_all(engine, [old.request(), new.request()])
    records = engine.gates.journal.drain()
    assert {"kind": "forget", "uid": "old-uid"} in records
    assert [p.uid for p in engine.gates.gangs.get(engine.gates.gangs.gang_of("new-uid").key).pending.values()] == [
        "new-uid"]


def test_a_member_whose_request_changed_is_journaled_again_and_a_bound_pod_is_no_pending_member():
    # Found by tests/hostile: annotations are mutable, and the state file restored the first version.
    engine = engine_of()
    engine.gates.journal.enabled = True
    first = worker("g-0", gpus=8).gang("g", 1)
    first.uid = "u"
    edited = worker("g-0", gpus=8).gang("g", 2)
    edited.uid = "u"
    filter_all(engine, [first.request(), first.request(), edited.request()])
    pods = [r["pod"]["gang"]["size"] for r in engine.gates.journal.drain() if r["kind"] == "pod"]
    assert pods == [1, 2]  # once per version, not once per filter
    solo = worker("solo", gpus=1)
    solo.uid = "s"
    [node] = engine.filter(solo.request(), ["n0"]).passed
    engine.bind("s", "ml", "solo", node)
    engine.filter(solo.gang("late", 2).request(), ["n0"])  # relabelled after its bind: not a pending member
    assert engine.gates.gangs.get(GangKey("ml", "late")) is None
    assert not [r for r in engine.gates.journal.drain() if r["kind"] == "pod" and r["pod"]["uid"] == "s"]
