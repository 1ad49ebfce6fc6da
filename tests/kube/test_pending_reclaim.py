"""Reclaim for pods kube-scheduler never shows the extender.

kube-scheduler counts `nvidia.com/gpu` itself (deploy/: `ignoredByScheduler: false`), so when every
node's GPUs are requested it rejects a whole-GPU pod in its own filters and never calls the
extender's filter. The pod reaches gpusched only through the pod watch; that must be enough for
the core to plan reclaim and for the Lease holder to evict for it. These tests play kube-scheduler
by hand: they call the extender's filter and bind exactly when kube-scheduler would.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from scheduler.configfile import GatesConfig
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.kube.cache import NODES, PODS, ClusterCache
from scheduler.kube.client import ClientSettings, KubeClient
from scheduler.kube.runtime import KubeExtender
from tests.kube.conftest import eventually, fast_settings, get_json, lease, schedule
from tests.kube.objects import bound, namespace, node, pod

NODE_NAMES = ["a", "b"]
# vision is guaranteed 2 GPUs and borrows the rest; nlp is guaranteed 4 and has none yet.
TEAMS = GatesConfig(QuotaConfig((Team("vision", 2000, None), Team("nlp", 4000, None))))


async def start(kube_api) -> KubeExtender:
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=5.0))
    extender = KubeExtender(client, settings=fast_settings(lease=lease("r1"), identity="r1"),
                            engine_settings=EngineSettings(), gates=TEAMS)
    await extender.start()
    await eventually(extender.is_leader, what="the lease")
    return extender


def unschedulable(obj: dict) -> dict:
    """The status kube-scheduler writes after its own filters rejected every node."""
    out = orjson.loads(orjson.dumps(obj))
    out["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]
    return out


def filter_calls(extender: KubeExtender) -> float:
    from prometheus_client import generate_latest
    for line in generate_latest(extender.service.metrics.registry).decode().splitlines():
        if line.startswith('gpusched_extender_request_duration_seconds_count{verb="filter"}'):
            return float(line.split()[-1])
    return 0.0


async def fill_with_vision(kube_api, extender: KubeExtender) -> list[dict]:
    """v0..v3, 2 GPUs each, scheduled in order: v0 and v1 on a, v2 and v3 on b. v0 is within
    vision's guarantee of 2; v1, v2 and v3 borrow."""
    placed = []
    for i in range(4):
        p = kube_api.put(pod(f"v{i}", namespace="vision", gpus=2, created=f"2026-01-01T00:0{i}:00Z"))
        assert (await schedule(extender, p, NODE_NAMES))[1] == ""
        placed.append(p)
    await eventually(lambda: all(kube_api.get("pods", "vision", f"v{i}")["spec"].get("nodeName") for i in range(4)),
                     what="the bindings")
    return placed


def seed(kube_api) -> None:
    for obj in (namespace("vision"), namespace("nlp"), node("a", gpus=4), node("b", gpus=4)):
        kube_api.put(obj)


async def test_a_pod_only_the_watch_saw_gets_borrowed_gpus_back(kube_api):
    seed(kube_api)
    extender = await start(kube_api)
    try:
        vision = await fill_with_vision(kube_api, extender)
        annotations = [kube_api.get("pods", "vision", p["metadata"]["name"])["metadata"]["annotations"] for p in vision]
        assert [a.get("gpusched.io/borrowed") for a in annotations] == [None, "true", "true", "true"]
        calls = filter_calls(extender)

        # nlp's pod needs a whole node; kube-scheduler finds nvidia.com/gpu full everywhere and
        # never asks the extender: it only writes the pod's status.
        waiting = kube_api.put(pod("n0", namespace="nlp", gpus=4))
        kube_api.put(unschedulable(kube_api.get("pods", "nlp", "n0")))
        uid = waiting["metadata"]["uid"]
        await eventually(lambda: uid in extender.engine.gates.waiting_for_reclaim, what="the pod waits for reclaim")
        state = await get_json(f"{extender.verbs.url}/state")
        [plan] = state["reclaim"]
        # Node a cannot be freed enough (v0 is within vision's guarantee); on b, v2 and v3 together make room.
        assert plan["node"] == "b" and sorted(u for v in plan["victims"] for u in v["uids"]) == sorted(
            p["metadata"]["uid"] for p in vision[2:])

        results = await extender.reclaimer.reclaim_once()
        assert results == {vision[3]["metadata"]["uid"]: "evicted", vision[2]["metadata"]["uid"]: "evicted"}
        await eventually(lambda: not extender.engine.allocations_on("b"), what="the evictions seen by the watch")
        assert kube_api.get("pods", "vision", "v0") is not None and kube_api.get("pods", "vision", "v1") is not None
        assert filter_calls(extender) == calls  # the extender never filtered n0

        # The evictions are cluster events: kube-scheduler retries n0, its filters pass b, and it asks us.
        assert await schedule(extender, kube_api.get("pods", "nlp", "n0"), ["b"]) == (["b"], "")
        await eventually(lambda: uid not in extender.engine.gates.waiting_for_reclaim, what="n0 no longer waits")
        assert await extender.reclaimer.reclaim_once() == {}
        assert extender.engine.allocations[uid].gpu_uuids == tuple(f"GPU-b-{i}" for i in range(4))
    finally:
        await extender.stop()


async def test_a_waiting_pod_deleted_before_reclaim_is_forgotten(kube_api):
    seed(kube_api)
    extender = await start(kube_api)
    try:
        await fill_with_vision(kube_api, extender)
        waiting = kube_api.put(pod("n0", namespace="nlp", gpus=4))
        uid = waiting["metadata"]["uid"]
        await eventually(lambda: uid in extender.engine.gates.waiting_for_reclaim, what="the pod waits for reclaim")
        kube_api.delete("pods", "nlp", "n0")
        await eventually(lambda: uid not in extender.engine.gates.waiting_for_reclaim, what="the deletion")
        assert await extender.reclaimer.reclaim_once() == {}
        assert len(extender.engine.allocations) == 4
    finally:
        await extender.stop()


async def test_a_restarted_replica_finds_the_waiting_pod_in_its_first_list(kube_api):
    seed(kube_api)
    first = await start(kube_api)
    try:
        vision = await fill_with_vision(kube_api, first)
    finally:
        await first.stop()
    waiting = kube_api.put(unschedulable(pod("n0", namespace="nlp", gpus=4)))
    restarted = await start(kube_api)
    try:
        assert waiting["metadata"]["uid"] in restarted.engine.gates.waiting_for_reclaim
        results = await restarted.reclaimer.reclaim_once()
        assert set(results) == {p["metadata"]["uid"] for p in vision[2:]}
    finally:
        await restarted.stop()


# ----------------------------------------------------------------- the cache alone, API JSON in
def full_cache() -> ClusterCache:
    """Nodes a and b (4 GPUs each), all taken by vision: v0 within its guarantee, the rest borrowed."""
    c = ClusterCache(Engine(quotas=TEAMS.quotas), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    c.replace(NODES, [node("a", gpus=4), node("b", gpus=4)])
    c.replace(PODS, [bound(pod(f"v{i}", namespace="vision", gpus=2), "ab"[i // 2],
                           gpus=",".join(f"GPU-{'ab'[i // 2]}-{j}" for j in (2 * (i % 2), 2 * (i % 2) + 1)),
                           **({"borrowed": "true"} if i else {}))
                     for i in range(4)])
    return c


def gated(obj: dict) -> dict:
    obj["spec"]["schedulingGates"] = [{"name": "kueue.x-k8s.io/admission"}]
    return obj


def deleting(obj: dict) -> dict:
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return obj


@pytest.mark.parametrize(("obj", "waits"), [
    (pod("n0", namespace="nlp", gpus=4), True),
    (unschedulable(pod("n0", namespace="nlp", gpus=4)), True),
    (pod("n0", namespace="nlp", gpus=2, labels={"gpusched.io/team": "vision"}), False),  # vision is above its guarantee
    (pod("n0", namespace="nlp", gpus=8), False),                    # more than nlp's guarantee: no reclaim for it
    (pod("n0", namespace="nlp", gpus=4, scheduler="default-scheduler"), False),
    (gated(pod("n0", namespace="nlp", gpus=4)), False),
    (deleting(pod("n0", namespace="nlp", gpus=4)), False),
    (pod("n0", namespace="nlp", cpu="2"), False),                  # no GPU asked
], ids=["pending", "unschedulable", "team-above-guarantee", "beyond-guarantee", "other-scheduler", "gated",
        "deleting", "no-gpu"])
def test_which_pending_pods_wait_for_reclaim(obj, waits):
    c = full_cache()
    c.apply(PODS, "ADDED", obj)
    assert (obj["metadata"]["uid"] in c.engine.gates.waiting_for_reclaim) is waits


@pytest.mark.parametrize("change", ["bound", "gated", "deleting", "deleted", "failed"])
def test_a_waiting_pod_stops_waiting_when_it_is_no_longer_pending(change):
    c = full_cache()
    obj = pod("n0", namespace="nlp", gpus=4)
    c.apply(PODS, "ADDED", obj)
    uid = obj["metadata"]["uid"]
    assert uid in c.engine.gates.waiting_for_reclaim
    after = orjson.loads(orjson.dumps(obj))
    event = "MODIFIED"
    if change == "bound":
        for i in range(1, 4):  # the reclaim happened: vision's borrowed pods are gone
            c.apply(PODS, "DELETED", {"metadata": {"uid": next(u for u, r in c.pods.items() if r.name == f"v{i}")}})
        after = bound(after, "b", gpus="GPU-b-0,GPU-b-1,GPU-b-2,GPU-b-3")
    elif change == "gated":
        gated(after)
    elif change == "deleting":
        deleting(after)
    elif change == "failed":
        after["status"]["phase"] = "Failed"
    else:
        event = "DELETED"
    c.apply(PODS, event, after)
    assert uid not in c.engine.gates.waiting_for_reclaim
    assert [r.name for r in c.pending_pods()] == []


def test_the_sweep_notices_a_pending_pod_whose_room_was_taken_meanwhile():
    # n0 arrived while b had room; a pod of another scheduler took it before kube-scheduler tried
    # n0, whose status kube-scheduler then left unchanged: no event, only the sweep sees it.
    c = full_cache()
    borrowed = [u for u, r in c.pods.items() if r.name in ("v2", "v3")]
    for uid in borrowed:
        c.apply(PODS, "DELETED", {"metadata": {"uid": uid}})
    obj = pod("n0", namespace="nlp", gpus=4)
    c.apply(PODS, "ADDED", obj)
    assert obj["metadata"]["uid"] not in c.engine.gates.waiting_for_reclaim  # fits on b
    c.apply(PODS, "ADDED", bound(pod("v4", namespace="vision", gpus=4), "b", gpus="GPU-b-0,GPU-b-1,GPU-b-2,GPU-b-3",
                                 borrowed="true"))
    c.sweep()
    assert obj["metadata"]["uid"] in c.engine.gates.waiting_for_reclaim
