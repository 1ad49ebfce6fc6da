"""The binder's failure modes against the fake API server: retries, refusals explained, nothing half-written."""

from __future__ import annotations

from tests.kube.conftest import get_json, replica, schedule
from tests.kube.objects import node, pod

GPUSCHED_KEYS = ("gpusched.io/gpus", "gpusched.io/node")


def stored(kube_api, name: str) -> dict:
    return kube_api.get("pods", "ml", name)


def recorded(kube_api, name: str) -> dict:
    annotations = (stored(kube_api, name) or {}).get("metadata", {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith("gpusched.io/")}


async def test_throttling_and_server_errors_are_retried(kube_api):
    kube_api.put(node("a", gpus=1))
    p = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        kube_api.fail_next("POST", r"/pods/p/binding$", 429, retry_after=0)
        kube_api.fail_next("POST", r"/pods/p/binding$", 503, count=2)
        assert await schedule(extender, p, ["a"]) == (["a"], "")
        assert stored(kube_api, "p")["spec"]["nodeName"] == "a"
        assert extender.binder.retries == 3


async def test_a_pod_recreated_under_the_same_name_is_not_bound_and_nothing_is_written(kube_api):
    kube_api.put(node("a", gpus=1))
    old = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        filtered = await schedule_filter_only(extender, old)
        kube_api.put(pod("p", gpus=1))  # same name, new UID (its deletion not yet seen by the watch)
        error = await bind(extender, old, filtered)
        assert "re-created" in error
        assert recorded(kube_api, "p") == {} and "nodeName" not in stored(kube_api, "p")["spec"]
        state = await get_json(f"{extender.verbs.url}/state")
        assert all(not g["pods"] for n in state["nodes"] for g in n["gpus"])  # the books let go too


async def test_a_refused_binding_takes_the_record_off_again(kube_api):
    kube_api.put(node("a", gpus=1))
    p = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        kube_api.fail_next("POST", r"/pods/p/binding$", 403, message="forbidden by policy")
        _, error = await schedule(extender, p, ["a"])
        assert "forbidden by policy" in error
        assert recorded(kube_api, "p") == {}
        assert "nodeName" not in stored(kube_api, "p")["spec"]
        await extender.events.drain()
        reasons = [e["reason"] for e in kube_api.objects("events", "ml")]
        assert reasons == ["FailedScheduling"]
        assert await schedule(extender, p, ["a"]) == (["a"], "")  # the GPU was released: the retry fits


async def test_a_lost_answer_after_the_binding_landed_is_a_success(kube_api):
    kube_api.put(node("a", gpus=1))
    p = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        passed = await schedule_filter_only(extender, p)
        # kube-scheduler retries a bind whose answer it lost: the API server refuses the second
        # Binding (already assigned), and the pod, read back, is bound to that very node
        assert await bind(extender, p, passed) == ""
        assert await bind(extender, p, passed) == ""
        binds = [r for r in kube_api.requests if r.path.endswith("/binding")]
        assert len(binds) == 2 and stored(kube_api, "p")["spec"]["nodeName"] == "a"


async def test_a_pod_bound_elsewhere_meanwhile_fails_cleanly(kube_api):
    kube_api.put(node("a", gpus=1))
    kube_api.put(node("b", gpus=1))
    p = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        passed = await schedule_filter_only(extender, p, ["a"])
        bound_elsewhere = stored(kube_api, "p")
        bound_elsewhere["spec"]["nodeName"] = "b"
        kube_api.put(bound_elsewhere)
        error = await bind(extender, p, passed)
        assert "already bound to b" in error
        assert recorded(kube_api, "p") == {}


async def schedule_filter_only(extender, p, nodes=("a",)) -> list[str]:
    from tests.kube.conftest import post
    answer = await post(f"{extender.verbs.url}/filter", {"Pod": p, "Nodes": None, "NodeNames": list(nodes)})
    return answer["NodeNames"]


async def bind(extender, p, passed) -> str:
    from tests.kube.conftest import post
    meta = p["metadata"]
    result = await post(f"{extender.verbs.url}/bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                                       "PodUID": meta["uid"], "Node": passed[0]})
    return result["Error"]


async def test_a_pod_deleted_between_filter_and_bind_fails_cleanly(kube_api):
    kube_api.put(node("a", gpus=1))
    p = kube_api.put(pod("p", gpus=1))
    async with replica(kube_api) as extender:
        passed = await schedule_filter_only(extender, p)
        # deleted after filter, before the watch told the extender: the Binding and the read are 404s
        kube_api.fail_next("POST", r"/pods/p/binding$", 404)
        kube_api.fail_next("GET", r"/pods/p$", 404)
        error = await bind(extender, p, passed)  # an Error in the answer, never an HTTP 500
        assert "was deleted before it was bound" in error
        state = await get_json(f"{extender.verbs.url}/state")
        assert all(not g["pods"] for n in state["nodes"] for g in n["gpus"])  # the books let go too
