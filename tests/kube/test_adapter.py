"""The adapter against the fake API server, driven by the real `kubernetes` client over real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from scheduler.kube.client import KubeClient
from scheduler.kube.reclaimer import Victim
from scheduler.kube.runtime import KubeExtender
from tests.kube.conftest import eventually, fast_settings, get_json, lease, post, replica, schedule
from tests.kube.objects import node, pod


def seed(kube_api, *objects) -> list[dict]:
    return [kube_api.put(o) for o in objects]


def stored(kube_api, name: str, namespace: str = "ml") -> dict:
    return kube_api.get("pods", namespace, name)


def gpu_holders(state: dict, node_name: str) -> dict[str, list[str]]:
    entry = next(n for n in state["nodes"] if n["name"] == node_name)
    return {g["uuid"]: g["pods"] for g in entry["gpus"] if g["pods"]}


def requests(kube_api, pod_name: str) -> list[tuple[str, str]]:
    return [(r.method, r.path.rsplit("/", 1)[-1] if r.path.endswith("binding") else "pod")
            for r in kube_api.requests if f"/pods/{pod_name}" in r.path and r.method in ("PATCH", "POST")]


async def test_readyz_turns_ready_only_after_the_first_full_sync(kube_api):
    seed(kube_api, node("a", gpus=2))
    kube_api.fail_next("GET", r"/api/v1/pods$", None, delay=1.0)  # a slow first pod list
    extender = KubeExtender(KubeClient(kube_api.configuration()), settings=fast_settings())
    starting = asyncio.create_task(extender.start())
    try:
        await eventually(lambda: extender.public is not None, what="the public listener")
        assert await _status(f"{extender.public.url}/readyz") == 503
        assert await _status(f"{extender.public.url}/healthz") == 200
        assert extender.verbs is None  # no verbs on half a picture
        await starting
        assert await _status(f"{extender.public.url}/readyz") == 200
        assert _metric(extender, "gpusched_kube_synced") == 1.0
    finally:
        await starting
        await extender.stop()


async def test_readyz_never_says_ready_before_the_verbs_listen(kube_api, monkeypatch):
    """kube-scheduler is told to call once /readyz is 200: the verbs' port must answer by then."""
    import scheduler.kube.runtime as runtime
    seed(kube_api, node("a", gpus=2))
    extender = KubeExtender(KubeClient(kube_api.configuration()), settings=fast_settings())
    seen_ready_while_closed = []
    real_start = runtime.start

    async def slow_bind(*args, **kwargs):  # the verbs' listener takes a while to bind (a loaded node)
        for _ in range(10):
            seen_ready_while_closed.append(extender.service.ready)
            await asyncio.sleep(0.02)
        return await real_start(*args, **kwargs)

    monkeypatch.setattr(runtime, "start", slow_bind)
    await extender.start()
    try:
        assert not any(seen_ready_while_closed), "/readyz said ready while the verbs' port refused connections"
        assert await _status(f"{extender.public.url}/readyz") == 200
        assert await _status(f"{extender.verbs.url}/healthz") == 200
    finally:
        await extender.stop()


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def test_bind_is_one_binding_that_carries_the_record(kube_api):
    seed(kube_api, node("a", gpus=4, sharing="mps"))
    [p] = seed(kube_api, pod("share", milli=250, gpu_memory=8192, annotations={"gpusched.io/sharing": "mps"}))
    async with replica(kube_api) as extender:
        passed, error = await schedule(extender, p, ["a"])
        assert (passed, error) == (["a"], "")
        assert requests(kube_api, "share") == [("POST", "binding")]  # one write, as kube-scheduler's own
        got = stored(kube_api, "share")
        assert got["spec"]["nodeName"] == "a"
        assert got["metadata"]["annotations"].items() >= {
            "gpusched.io/gpus": "GPU-a-0", "gpusched.io/gpu-milli": "250", "gpusched.io/gpu-memory": "8192",
            "gpusched.io/mps-thread-pct": "25", "gpusched.io/mps-mem-limit": "0=8192M"}.items()
        await extender.events.drain()
    events = [e for e in kube_api.objects("events", "ml") if e["involvedObject"]["name"] == "share"]
    assert [(e["reason"], e["type"]) for e in events] == [("Scheduled", "Normal")]
    assert "250 milli-GPU and 8192 MiB of GPU GPU-a-0 (MPS)" in events[0]["message"]


class Crash(BaseException):
    """The process dies: nothing after this point runs (not even the service's release)."""


async def test_crash_before_the_binding_then_restart_loses_and_doubles_nothing(kube_api):
    seed(kube_api, node("a", gpus=1))
    [first, second] = seed(kube_api, pod("first", gpus=1), pod("second", gpus=1))
    async with replica(kube_api) as extender:
        async def crash(alloc):
            raise Crash()
        extender.binder.before_binding.append(crash)
        with pytest.raises(aiohttp.ServerDisconnectedError):  # the handler dies with the process
            await schedule(extender, first, ["a"])
    assert "gpusched.io/gpus" not in stored(kube_api, "first")["metadata"].get("annotations", {})
    assert "nodeName" not in stored(kube_api, "first")["spec"]
    async with replica(kube_api) as restarted:
        state = await get_json(f"{restarted.verbs.url}/state")
        assert gpu_holders(state, "a") == {}  # not lost: nothing was written
        assert await schedule(restarted, first, ["a"]) == (["a"], "")  # kube-scheduler retries it
        assert await schedule(restarted, second, ["a"]) == ([], "no node fits")  # not doubled
        state = await get_json(f"{restarted.verbs.url}/state")
        assert gpu_holders(state, "a") == {"GPU-a-0": ["ml/first"]}


async def test_kill_and_restart_mid_workload_gives_identical_state(kube_api):
    seed(kube_api, node("a", gpus=4), node("b", gpus=2, sharing="mps", model="NVIDIA-L4", memory=24576),
         node("cpu-0"))
    ours = seed(kube_api, pod("w2", gpus=2), pod("w1", gpus=1), pod("s1", milli=500, gpu_memory=8192),
                pod("s2", milli=250, gpu_memory=4096, annotations={"gpusched.io/sharing": "mps"}),
                pod("done", gpus=1))
    seed(kube_api, pod("foreign", gpus=1, scheduler="default-scheduler", node_name="a"),
         pod("web", cpu="2", scheduler="default-scheduler", node_name="cpu-0"))
    async with replica(kube_api) as extender:
        for p in ours:
            assert (await schedule(extender, p, ["a", "b", "cpu-0"]))[1] == ""
        finished = stored(kube_api, "done")
        finished["status"]["phase"] = "Succeeded"
        kube_api.put(finished)
        await eventually(lambda: "ml/done" not in orjson.dumps(extender.service.state()).decode(), what="release")
        seed(kube_api, pod("pending", gpus=8))
        await eventually(lambda: extender.cache.state_section()["kube"]["pendingPods"] == 1, what="pending pod")
        before = await get_json(f"{extender.verbs.url}/state")
    async with replica(kube_api) as restarted:
        after = await get_json(f"{restarted.verbs.url}/state")
    assert after == before
    assert before["kube"]["boundByOtherSchedulers"] == 2
    assert sum(len(g["pods"]) for n in before["nodes"] for g in n["gpus"]) == 6  # w2 x2, w1, s1, s2, foreign


async def test_pods_bound_by_another_scheduler_are_counted(kube_api):
    seed(kube_api, node("a", gpus=2))
    seed(kube_api, pod("other", gpus=2, scheduler="default-scheduler", node_name="a"))
    [mine] = seed(kube_api, pod("mine", gpus=1))
    async with replica(kube_api) as extender:
        answer = await post(f"{extender.verbs.url}/filter", {"Pod": mine, "Nodes": None, "NodeNames": ["a"]})
        assert answer["NodeNames"] == [] and answer["FailedNodes"] == {"a": "no single GPU with enough free capacity"}


async def test_a_dropped_watch_resumes_without_relisting(kube_api):
    seed(kube_api, node("a", gpus=2))
    async with replica(kube_api) as extender:
        pods = next(r for r in extender.sync.reflectors if r.resource.kind == "pods")
        await eventually(lambda: kube_api.open_watches() >= 5, what="watches open")
        assert kube_api.drop_watches() >= 5
        seed(kube_api, pod("late", gpus=1, scheduler="default-scheduler", node_name="a"))
        await eventually(lambda: extender.engine.allocations, what="the pod after the drop")
        assert pods.lists == 1
        assert _metric(extender, 'gpusched_kube_watch_restarts_total{cause="dropped",kind="pods"}') >= 1


async def test_an_expired_watch_relists_and_catches_up(kube_api):
    seed(kube_api, node("a", gpus=2))
    seed(kube_api, pod("gone", gpus=1, scheduler="default-scheduler", node_name="a"))
    async with replica(kube_api) as extender:
        pods = next(r for r in extender.sync.reflectors if r.resource.kind == "pods")
        await eventually(lambda: kube_api.open_watches() >= 5, what="watches open")
        kube_api.fail_next("GET", r"/api/v1/pods$", 503, count=3)  # the resumed watch fails a while ...
        kube_api.drop_watches()
        kube_api.delete("pods", "ml", "gone")                      # ... changes happen meanwhile ...
        kube_api.compact()                                         # ... and history is compacted: 410
        await eventually(lambda: pods.lists >= 2, timeout=10, what="a relist")
        await eventually(lambda: not extender.engine.allocations, what="the deletion seen by the relist")
        assert _metric(extender, 'gpusched_kube_watch_restarts_total{cause="expired",kind="pods"}') >= 1


async def test_two_replicas_only_the_lease_holder_evicts(kube_api):
    seed(kube_api, node("a", gpus=2))
    [victim] = seed(kube_api, pod("borrower", gpus=1, node_name="a"))
    meta = victim["metadata"]
    plan = [Victim(meta["uid"], "ml", "borrower", "team vision is below its guarantee")]
    async with replica(kube_api, plan=lambda: plan, lease=lease("r1"), identity="r1") as r1:
        await eventually(r1.is_leader, what="r1 leads")
        async with replica(kube_api, plan=lambda: plan, lease=lease("r2"), identity="r2") as r2:
            await asyncio.sleep(0.5)
            assert r1.is_leader() and not r2.is_leader()
            assert await r2.reclaimer.reclaim_once() == {}
            assert await r1.reclaimer.reclaim_once() == {meta["uid"]: "evicted"}
            await eventually(lambda: stored(kube_api, "borrower") is None, what="the eviction")
            evictions = [r for r in kube_api.requests if r.path.endswith("/eviction")]
            assert len(evictions) == 1
            await r1.stop()  # gives the lease up: r2 takes over without waiting it out
            await eventually(r2.is_leader, timeout=3, what="r2 takes over")
    lease_obj = kube_api.get("leases", "default", "gpu-extender")
    assert lease_obj["spec"]["leaseTransitions"] >= 1


async def test_a_pod_disruption_budget_blocks_reclaim(kube_api):
    seed(kube_api, node("a", gpus=2))
    [victim] = seed(kube_api, pod("guarded", gpus=1, node_name="a", labels={"app": "guarded"}))
    kube_api.put({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                  "metadata": {"name": "guard", "namespace": "ml"},
                  "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})
    p = stored(kube_api, "guarded")
    p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    kube_api.put(p)
    plan = [Victim(victim["metadata"]["uid"], "ml", "guarded", "reclaim")]
    async with replica(kube_api, plan=lambda: plan, lease=lease("r1"), identity="r1") as r1:
        await eventually(r1.is_leader, what="r1 leads")
        assert await r1.reclaimer.reclaim_once() == {victim["metadata"]["uid"]: "blocked_by_pdb"}
        assert stored(kube_api, "guarded") is not None


def _metric(extender, sample: str) -> float:
    from prometheus_client import generate_latest
    for line in generate_latest(extender.service.metrics.registry).decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0
