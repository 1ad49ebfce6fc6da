"""Binds run side by side: the books decide under the lock, the API writes happen outside it."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.kube.conftest import post, replica
from tests.kube.objects import node, pod


def _seed(kube_api, count: int) -> list[dict]:
    kube_api.put(node("a", gpus=count))
    pods = [pod(f"p{i}", gpus=1) for i in range(count)]
    for obj in pods:
        kube_api.put(obj)
    return pods


async def _filter_all(extender, pods) -> None:
    for obj in pods:
        answer = await post(f"{extender.verbs.url}/filter", {"Pod": obj, "Nodes": None, "NodeNames": ["a"]})
        assert answer["NodeNames"] == ["a"]


def _binding(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"], "Node": "a"}


async def bind_as_kube_scheduler(url: str, body: dict, http_timeout_s: float) -> str:
    """kube-scheduler's extender call: an answer within `httpTimeout`, or a timeout error."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=http_timeout_s)) as session, \
                session.post(url, json=body) as response:
            return (await response.json(content_type=None))["Error"]
    except TimeoutError:
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"


async def test_slow_api_writes_do_not_queue_binds_behind_each_other(kube_api):
    # Each Binding takes 0.6 s; 8 binds one after another need ~5 s, past a 3 s
    # httpTimeout: with the lock held across API calls, the later binds time out in kube-scheduler.
    pods = _seed(kube_api, 8)
    async with replica(kube_api) as extender:
        await _filter_all(extender, pods)
        kube_api.fail_next("POST", r"/pods/p\d+/binding$", None, count=8, delay=0.6)
        answers = await asyncio.gather(*(bind_as_kube_scheduler(f"{extender.verbs.url}/bind", _binding(p), 3.0)
                                         for p in pods))
        assert answers == [""] * 8
        held = [extender.engine.allocations[p["metadata"]["uid"]].gpu_uuids for p in pods]
        assert len({u for uuids in held for u in uuids}) == 8  # each its own GPU


async def test_a_bind_retried_while_the_first_is_in_flight_commits_once(kube_api):
    pods = _seed(kube_api, 1)
    async with replica(kube_api) as extender:
        await _filter_all(extender, pods)
        kube_api.fail_next("POST", r"/pods/p0/binding$", None, count=1, delay=0.5)
        first, second = await asyncio.gather(post(f"{extender.verbs.url}/bind", _binding(pods[0])),
                                             post(f"{extender.verbs.url}/bind", _binding(pods[0])))
        assert first["Error"] == second["Error"] == ""
        bindings = [r for r in kube_api.requests if r.method == "POST" and r.path.endswith("/p0/binding")]
        assert len(bindings) == 1


async def test_time_waiting_counts_against_the_deadline_and_late_binds_are_counted(kube_api):
    pods = _seed(kube_api, 1)
    async with replica(kube_api) as extender:
        extender.service.caller_timeout_s = 0.5  # as if kube-scheduler's httpTimeout were 0.5 s
        await _filter_all(extender, pods)
        kube_api.fail_next("POST", r"/pods/p0/binding$", None, count=1, delay=0.8)
        answer = await post(f"{extender.verbs.url}/bind", _binding(pods[0]))
        assert answer["Error"] == ""
        registry = extender.service.metrics.registry
        assert registry.get_sample_value("gpusched_bind_late_total") == 1.0
