"""A seeded script of extender calls, replayed through the real app or through the reference verbs
(tests/extender/reference_verbs.py: the verbs as they were before the fast paths).

Each step is a (verb, body) pair; `replay` returns every answer's bytes. The script covers what
the fast paths could get wrong: a prioritize after its own filter and after another pod's, a
prioritize over a subset or a reordering of the filtered list, unknown names, unavailable nodes,
a pod whose request is invalid, full Nodes (nodeCacheCapable: false), a pod filtered twice with
a changed body under the same UID, binds that fit and binds that no longer do, repeated binds.
"""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from aiohttp.test_utils import TestClient, TestServer

from benchmarks.big_cluster import nodes, pod_json
from scheduler.core.engine import Engine, EngineSettings
from scheduler.extender import wire
from scheduler.extender.app import create_app
from scheduler.extender.service import ExtenderService
from tests.extender import reference_verbs as ref

NODE_COUNT = 120


def service(policy: str, *, decide_in_filter: bool = False, reference: bool = False) -> ExtenderService:
    engine = (ref.ReferenceEngine if reference else Engine)(nodes(NODE_COUNT), settings=EngineSettings(policy=policy))
    for name in ("node-00003", "node-00050", "node-00100"):
        engine.set_node_unavailable(name, f"cordoned ({name})")
    return (ref.ReferenceService if reference else ExtenderService)(engine, decide_in_filter=decide_in_filter)


def steps(seed: int, count: int):
    """Yield (verb, message) for `count` pods; the bind target depends on earlier answers, so
    the caller sends back each filter and prioritize answer (`send` protocol of a generator)."""
    rng = np.random.default_rng(seed)
    names = [f"node-{i:05d}" for i in range(NODE_COUNT)]
    full = [{"metadata": {"name": n, "labels": {"a": "b"}}, "status": {}} for n in names[:40]]
    for i in range(count):
        pod = pod_json(seed * 1000 + i, rng)
        kind = rng.integers(0, 10)
        if kind == 0:
            pod["spec"]["containers"][0]["resources"]["limits"]["gpusched.io/gpu-milli"] = "5000"  # invalid
        elif kind == 1:
            pod["metadata"]["annotations"]["gpusched.io/gpu-model"] = "A100*,!T4"
        start = int(rng.integers(0, NODE_COUNT))
        candidates = names[start:] + names[:start]
        if rng.random() < 0.2:
            candidates = [*candidates[:int(rng.integers(1, NODE_COUNT))], "ghost-1", "ghost-2"]
        if rng.random() < 0.15:
            answer = yield "filter", {"Pod": pod, "Nodes": {"metadata": {}, "items": full}, "NodeNames": None}
            passed = [n["metadata"]["name"] for n in (answer.get("Nodes") or {}).get("items") or []]
        else:
            answer = yield "filter", {"Pod": pod, "Nodes": None, "NodeNames": candidates}
            passed = answer.get("NodeNames") or []
        if rng.random() < 0.1:  # the same UID filtered again with another shape
            pod = pod_json(seed * 1000 + i, rng)
            pod["metadata"]["uid"] = f"bench-uid-{seed * 1000 + i}"
            answer = yield "filter", {"Pod": pod, "Nodes": None, "NodeNames": candidates}
            passed = answer.get("NodeNames") or []
        chosen = passed[0] if passed else names[int(rng.integers(0, NODE_COUNT))]
        if len(passed) > 1:
            ask = list(passed)
            roll = rng.random()
            if roll < 0.15:
                ask = ask[::-1]
            elif roll < 0.3:
                ask = ask[: max(1, len(ask) // 2)]
            elif roll < 0.4:
                ask = [*ask, "ghost-3"]
            scores = yield "prioritize", {"Pod": pod, "Nodes": None, "NodeNames": ask}
            chosen = max(scores, key=lambda s: (s["Score"], s["Host"]))["Host"]
        if rng.random() < 0.1:
            chosen = names[int(rng.integers(0, NODE_COUNT))]  # kube-scheduler's own choice, maybe not ours
        if rng.random() < 0.85:
            meta = pod["metadata"]
            bind = {"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"], "Node": chosen}
            yield "bind", bind
            if rng.random() < 0.1:
                yield "bind", bind


async def replay(policy: str, seed: int, *, count: int = 60, decide_in_filter: bool = False
                 ) -> tuple[list[bytes], dict[str, float]]:
    """The real app over loopback HTTP: every answer (verb, status, body), and the rejection counters."""
    served = service(policy, decide_in_filter=decide_in_filter)
    answers: list[bytes] = []
    async with TestClient(TestServer(create_app(served))) as client:
        script = steps(seed, count)
        sent = None
        while True:
            try:
                verb, message = script.send(sent)
            except StopIteration:
                break
            response = await client.post(f"/{verb}", data=orjson.dumps(message))
            body = await response.read()
            answers.append(f"{verb} {response.status} ".encode() + body)
            sent = orjson.loads(body)
    return answers, rejections(served)


def replay_reference(policy: str, seed: int, *, count: int = 60, decide_in_filter: bool = False
                     ) -> tuple[list[bytes], dict[str, float]]:
    """The same script through the reference verbs, called directly."""
    served = service(policy, decide_in_filter=decide_in_filter, reference=True)
    verbs = {"filter": lambda body: served.filter(ref.decode_extender_args(body)),
             "prioritize": lambda body: served.prioritize(ref.decode_extender_args(body)),
             "bind": lambda body: asyncio.run(served.bind(wire.decode_binding_args(body)))}
    answers: list[bytes] = []
    script = steps(seed, count)
    sent = None
    while True:
        try:
            verb, message = script.send(sent)
        except StopIteration:
            break
        body = verbs[verb](orjson.dumps(message))
        answers.append(f"{verb} 200 ".encode() + body)
        sent = orjson.loads(body)
    return answers, rejections(served)


def rejections(served: ExtenderService) -> dict[str, float]:
    return {sample.labels["reason"]: sample.value for family in served.metrics.registry.collect()
            if family.name == "gpusched_filter_rejections" for sample in family.samples
            if sample.name.endswith("_total")}
