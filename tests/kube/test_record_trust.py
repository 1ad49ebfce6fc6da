"""Only records gpusched wrote hold GPUs (issue 13 item 5): an annotation on any bound pod is not one.

A record is a pod annotation, and whoever may patch a pod may write one. The books count it when
gpusched's binder could have written it (a pod of our scheduler, `gpusched.io/node` naming the node
it is bound to), or, on another scheduler's pod, as far as the pod's own `nvidia.com/gpu` backs it
(the agent writes which GPUs the kubelet gave it). Everything else is set aside and reported.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from scheduler.core.engine import Engine
from scheduler.core.request import parse_pod
from scheduler.core.view import state_view
from scheduler.kube.cache import NODES, PODS, CacheSettings, ClusterCache
from scheduler.kube.metrics import KubeMetrics
from tests.kube.objects import bound, node, pod

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EIGHT = ",".join(f"GPU-gpu-1-{i}" for i in range(8))


def cache() -> ClusterCache:
    c = ClusterCache(Engine(), clock=lambda: NOW, settings=CacheSettings())
    c.replace(NODES, [node("gpu-1", gpus=8)])
    return c


def held(c: ClusterCache) -> dict[str, list[str]]:
    entry = next(n for n in state_view(c.engine)["nodes"] if n["name"] == "gpu-1")
    return {g["uuid"]: g["pods"] for g in entry["gpus"] if g["pods"]}


def fits_eight(c: ClusterCache) -> bool:
    real = parse_pod(pod("real", gpus=8))
    return c.engine.filter(real, ["gpu-1"]).passed == ["gpu-1"]


def test_a_cpu_only_pod_of_another_scheduler_cannot_make_every_gpu_look_taken():
    c = cache()
    hostile = pod("hostile", scheduler="default-scheduler", node_name="gpu-1", annotations={"gpusched.io/gpus": EIGHT})
    c.replace(PODS, [hostile])
    assert held(c) == {}
    assert fits_eight(c)
    why = c.state_section()["kube"]["untrustedRecords"]["ml/hostile"]
    assert "default-scheduler" in why and "8 GPU(s)" in why


@pytest.mark.parametrize(("annotations", "says"), [
    ({"gpusched.io/gpus": EIGHT}, "no gpusched.io/node"),
    ({"gpusched.io/gpus": EIGHT, "gpusched.io/node": "gpu-2"}, "names node gpu-2"),
], ids=["no-node", "other-node"])
def test_a_record_of_our_scheduler_counts_only_on_the_node_it_names(annotations, says):
    # what a pod created with spec.nodeName and a copied record looks like: never bound by gpusched
    c = cache()
    c.replace(PODS, [pod("copied", node_name="gpu-1", annotations=annotations)])
    assert held(c) == {} and fits_eight(c)
    assert says in c.state_section()["kube"]["untrustedRecords"]["ml/copied"]


def test_a_record_written_by_our_binder_counts():
    c = cache()
    c.replace(PODS, [bound(pod("p", gpus=2), "gpu-1", gpus="GPU-gpu-1-1,GPU-gpu-1-3")])
    assert held(c) == {"GPU-gpu-1-1": ["ml/p"], "GPU-gpu-1-3": ["ml/p"]}
    assert c.state_section()["kube"]["untrustedRecords"] == {}


def test_another_schedulers_record_counts_as_far_as_its_device_plugin_request():
    # the agent writes which GPUs the kubelet gave a foreign whole-GPU pod: that is kept
    c = cache()
    agent_written = pod("dp", gpus=1, scheduler="default-scheduler", node_name="gpu-1",
                        annotations={"gpusched.io/gpus": "GPU-gpu-1-5"})
    c.replace(PODS, [agent_written])
    assert held(c) == {"GPU-gpu-1-5": ["ml/dp"]}
    # more GPUs than it asks the device plugin for: set aside, and the pod holds its one GPU as a guess
    greedy = pod("greedy", gpus=1, scheduler="default-scheduler", node_name="gpu-1",
                 annotations={"gpusched.io/gpus": EIGHT})
    c.apply(PODS, "ADDED", greedy)
    assert sorted(p for pods in held(c).values() for p in pods) == ["ml/dp", "ml/greedy"]
    assert "requests 1 nvidia.com/gpu" in c.state_section()["kube"]["untrustedRecords"]["ml/greedy"]


def test_a_foreign_share_record_is_never_a_share():
    # only gpusched's binder grants shares; on a foreign pod the milli annotation means nothing
    c = cache()
    c.replace(PODS, [pod("dp", gpus=1, scheduler="default-scheduler", node_name="gpu-1",
                         annotations={"gpusched.io/gpus": "GPU-gpu-1-0", "gpusched.io/gpu-milli": "1"})])
    entry = next(n for n in state_view(c.engine)["nodes"] if n["name"] == "gpu-1")
    assert next(g for g in entry["gpus"] if g["uuid"] == "GPU-gpu-1-0")["usedMilli"] == 1000


def test_untrusted_records_are_forgotten_with_the_pod_and_counted_in_a_metric():
    c = cache()
    hostile = pod("hostile", scheduler="default-scheduler", node_name="gpu-1", annotations={"gpusched.io/gpus": EIGHT})
    c.replace(PODS, [hostile])
    registry = CollectorRegistry()
    KubeMetrics(registry, c, synced=lambda: True, leader=lambda: None, clock=lambda: NOW)
    assert "gpusched_untrusted_records 1.0" in generate_latest(registry).decode()
    c.apply(PODS, "DELETED", hostile)
    assert c.state_section()["kube"]["untrustedRecords"] == {}
    assert "gpusched_untrusted_records 0.0" in generate_latest(registry).decode()
