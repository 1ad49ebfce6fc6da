"""Gangs and quotas in a live cluster (the fake API server): the feed and the reclaimer.

Namespaces' team labels, ResourceQuotas and PodGroups reach the engine as the adapter watches
them; the reclaimer evicts what the core's reclaim plan names, through the Eviction API.
"""

from __future__ import annotations

import pytest

from scheduler.configfile import GatesConfig
from scheduler.core.engine import EngineSettings
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.kube.client import ClientSettings, KubeClient
from scheduler.kube.runtime import KubeExtender
from tests.fakes.kubeapi import KubeApiFake
from tests.kube.conftest import eventually, fast_settings, lease, schedule
from tests.kube.objects import bound, namespace, node, pod


@pytest.fixture
def kube_api():
    with KubeApiFake(bookmark_interval=0.5) as fake:
        yield fake


async def start(kube_api, gates: GatesConfig) -> KubeExtender:
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=5.0))
    extender = KubeExtender(client, settings=fast_settings(lease=lease("r1"), identity="r1"),
                            engine_settings=EngineSettings(), gates=gates)
    await extender.start()
    return extender


def quota(namespace_name: str, **hard: str) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpus", "namespace": namespace_name},
            "spec": {"hard": hard}}


def pod_group(namespace_name: str, name: str, min_member: int) -> dict:
    return {"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": name, "namespace": namespace_name}, "spec": {"minMember": min_member}}


async def test_team_labels_quotas_and_pod_groups_reach_the_engine(kube_api):
    for obj in (namespace("research", **{"gpusched.io/team": "vision"}), namespace("nlp"),
                quota("nlp", **{"requests.nvidia.com/gpu": "8", "requests.gpusched.io/gpu-milli": "500"}),
                pod_group("nlp", "bert", 3)):
        kube_api.put(obj)
    extender = await start(kube_api, GatesConfig())
    try:
        gates = extender.engine.gates
        team = gates.quotas.team("nlp")
        assert (team.source, team.guaranteed_milli, team.max_milli) == ("resourcequota", 8500, 8500)
        member = pod("bert-0", namespace="nlp", gpus=1, labels={"scheduling.x-k8s.io/pod-group": "bert"})
        passed, _ = await schedule(extender, member, ["a"])
        assert passed == [] and gates.gangs.size(gates.gangs.gang_of(member["metadata"]["uid"])) == 3
        kube_api.put(namespace("nlp", **{"gpusched.io/team": "language"}))  # the quota's team follows the label
        await eventually(lambda: gates.quotas.team("language").source == "resourcequota", what="the relabel")
        assert gates.quotas.team("nlp").source == "default"
        assert gates.quotas.team_of_namespace("research") == "vision"
    finally:
        await extender.stop()


async def test_the_reclaimer_evicts_the_newest_borrowed_pod_for_a_team_under_its_guarantee(kube_api):
    kube_api.put(namespace("vision"))
    kube_api.put(namespace("nlp"))
    kube_api.put(node("a", gpus=8))
    gpus = [",".join(f"GPU-a-{i}" for i in range(k, k + 4)) for k in (0, 4)]
    older, newer = (bound(pod(f"v{i}", namespace="vision", gpus=4, created=f"2026-01-0{i + 1}T00:00:00Z"), "a",
                          gpus=gpus[i], borrowed="true") for i in range(2))
    for obj in (older, newer):
        kube_api.put(obj)
    extender = await start(kube_api, GatesConfig(QuotaConfig((Team("nlp", 8000, None),))))
    try:
        await eventually(extender.is_leader, what="the lease")
        waiting = kube_api.put(pod("n0", namespace="nlp", gpus=4))
        passed, _ = await schedule(extender, waiting, ["a"])
        assert passed == []
        results = await extender.reclaimer.reclaim_once()
        assert len(results) == 1 and set(results.values()) == {"evicted"}
        assert list(results) == [newer["metadata"]["uid"]]  # created later: the newest borrowed pod
        await eventually(lambda: kube_api.get("pods", "vision", "v1") is None, what="the eviction")
        await eventually(lambda: newer["metadata"]["uid"] not in extender.engine.allocations, what="the watch")
        assert (await schedule(extender, waiting, ["a"]))[1] == ""  # bound: the reclaimed GPUs were enough
        assert kube_api.get("pods", "vision", "v0") is not None
    finally:
        await extender.stop()
