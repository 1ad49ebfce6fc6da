"""Pods kube-scheduler parked after an error are nudged back to its queue, a bounded trickle."""

from __future__ import annotations

from tests.kube.conftest import eventually, replica
from tests.kube.objects import node, pod


def errored(obj: dict, message: str = 'Post "http://127.0.0.1:8888/filter": connection refused') -> dict:
    obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulerError",
                                    "message": message}]
    return obj


def unschedulable(obj: dict) -> dict:
    obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                    "message": "0/1 nodes are available"}]
    return obj


def patches(kube_api, name: str) -> list:
    return [r for r in kube_api.requests if r.method == "PATCH" and r.path.endswith(f"/pods/{name}")]


async def test_a_pod_parked_after_an_error_is_nudged_once_per_interval(kube_api):
    kube_api.put(node("a", gpus=1))
    kube_api.put(errored(pod("stalled", gpus=1)))
    kube_api.put(unschedulable(pod("verdict", gpus=1)))
    async with replica(kube_api) as extender:
        requeuer = extender.requeuer
        await eventually(lambda: requeuer.cache.stalled_pods(), what="the stalled pod in the cache")
        assert [r.name for r in requeuer.cache.stalled_pods()] == ["stalled"]  # a verdict is not an error
        assert await requeuer.round() == 1
        stored = kube_api.get("pods", "ml", "stalled")
        assert "gpusched.io/requeued" in stored["metadata"]["annotations"]
        assert await requeuer.round() == 0  # not again within per_pod_s, even if the error stands
        assert len(patches(kube_api, "stalled")) == 1 and not patches(kube_api, "verdict")
        assert extender.metrics.requeued._value.get() == 1


async def test_only_the_leading_replica_nudges(kube_api):
    kube_api.put(node("a", gpus=1))
    kube_api.put(errored(pod("stalled", gpus=1)))
    async with replica(kube_api) as extender:
        requeuer = extender.requeuer
        requeuer.may_write = lambda: False
        await eventually(lambda: requeuer.cache.stalled_pods(), what="the stalled pod in the cache")
        assert await requeuer.round() == 0
        assert not patches(kube_api, "stalled")
