"""Gang reservations rebuilt from their members' annotations: a restarted or standby replica's books."""

from __future__ import annotations

import copy

import orjson

from scheduler.core import contract as c
from scheduler.core.engine import Engine
from scheduler.core.gate_view import gates_view
from scheduler.core.request import parse_pod
from scheduler.core.view import state_view
from scheduler.kube.cache import NODES, PODS, CacheSettings, ClusterCache
from scheduler.kube.reservations import annotation_of
from tests.kube.objects import bound, node, pod
from tests.kube.test_cache import NOW


def replica() -> ClusterCache:
    cache = ClusterCache(Engine(clock=NOW.timestamp), clock=lambda: NOW, settings=CacheSettings())
    cache.replace(NODES, [node("a", gpus=8)])
    return cache


def gang(size: int = 4, gpus: int = 2) -> list[dict]:
    return [pod(f"m{i}", gpus=gpus, labels={c.GANG_LABEL: "g"}, annotations={c.GANG_SIZE_ANNOTATION: str(size)})
            for i in range(size)]


def planned(members: list[dict]) -> tuple[ClusterCache, list[dict]]:
    """The leader: filters every member (the last one reserves the plan); the members as the
    writer leaves them, each carrying its piece of the reservation."""
    leader = replica()
    leader.engine.gates.journal.enabled = True
    for member in members:
        leader.engine.filter(parse_pod(member), ["a"])
    (reserve,) = [r for r in leader.engine.gates.journal.drain() if r["kind"] == "reserve"]
    annotated = copy.deepcopy(members)
    by_uid = {m["uid"]: m for m in reserve["members"]}
    for member in annotated:
        member["metadata"]["annotations"][c.RESERVATION_ANNOTATION] = annotation_of(
            reserve, by_uid[member["metadata"]["uid"]])
    return leader, annotated


def books(cache: ClusterCache) -> dict:
    view = gates_view(cache.engine.gates)
    return {"nodes": state_view(cache.engine)["nodes"], "gangs": view["gangs"], "teams": view["teams"]}


def test_a_restarted_replica_rebuilds_the_reservation_from_its_pods():
    leader, members = planned(gang())
    restarted = replica()
    restarted.replace(PODS, members)
    assert books(restarted) == books(leader)
    assert restarted.reservations.restored == 1


def test_a_reservation_missing_a_piece_is_not_restored_and_holds_nothing():
    _, members = planned(gang())
    del members[2]["metadata"]["annotations"][c.RESERVATION_ANNOTATION]  # a crash while writing it
    restarted = replica()
    restarted.replace(PODS, members)
    assert not any(g.get("reservation") for g in books(restarted)["gangs"])
    assert all(not g["pods"] for g in books(restarted)["nodes"][0]["gpus"])


def test_a_member_bound_by_the_leader_replaces_its_hold_on_the_standby():
    _, members = planned(gang())
    standby = replica()
    standby.replace(PODS, members)
    held = next(g for g in books(standby)["gangs"])["reservation"]["members"][0]
    member = next(m for m in members if m["metadata"]["uid"] == held["uid"])
    standby.apply(PODS, "MODIFIED", bound(member, "a", gpus=",".join(held["gpus"])))
    gpus = books(standby)["nodes"][0]["gpus"]
    assert [g["usedMilli"] for g in gpus] == [1000] * 8  # 4 members x 2 GPUs, each GPU held once
    assert sorted(g["uuid"] for g in gpus if g["pods"]) == sorted(held["gpus"])
    assert not standby.discrepancies
    assert len(books(standby)["gangs"][0]["reservation"]["members"]) == 3


def test_a_stale_pending_event_after_the_gang_completed_restores_nothing():
    _, members = planned(gang())
    standby = replica()
    standby.replace(PODS, members)
    reservation = books(standby)["gangs"][0]["reservation"]
    for held in reservation["members"]:
        member = next(m for m in members if m["metadata"]["uid"] == held["uid"])
        standby.apply(PODS, "MODIFIED", bound(member, "a", gpus=",".join(held["gpus"])))
    before = books(standby)
    standby.apply(PODS, "MODIFIED", members[0])  # an older version, still pending, arrives late
    assert books(standby) == before
    assert standby.reservations.restored == 1


def test_a_forged_annotation_is_not_believed():
    _, members = planned(gang(size=1, gpus=1))
    value = orjson.loads(members[0]["metadata"]["annotations"][c.RESERVATION_ANNOTATION])
    value["member"]["gpu_uuids"] = [f"GPU-a-{i}" for i in range(8)]  # the whole node for a 1-GPU pod
    value["member"]["slots"] = list(range(8))
    members[0]["metadata"]["annotations"][c.RESERVATION_ANNOTATION] = orjson.dumps(value).decode()
    restarted = replica()
    restarted.replace(PODS, members)
    assert restarted.reservations.restored == 0
    assert all(not g["pods"] for g in books(restarted)["nodes"][0]["gpus"])
