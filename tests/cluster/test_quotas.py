"""Team quotas under the real kube-scheduler: a max refused with its reason, borrowing reclaimed
through the real Eviction API (the example overlay's teams: vision 16..48 GPUs, nlp 32 guaranteed)."""

from __future__ import annotations

import pytest

from tests.cluster.cluster import node_object, pod_object
from tests.cluster.controlplane import ROOT, wait_until

pytestmark = pytest.mark.xdist_group("control-plane")

GPUSCHED_CONFIG = (ROOT / "deploy/overlays/example/gpusched-config.yaml").read_text()


def _team_pod(name: str, namespace: str, team: str) -> dict:
    return pod_object(name, namespace, gpus=8, labels={"gpusched.io/team": team})


def test_a_team_at_its_max_is_refused_and_borrowed_gpus_are_reclaimed_by_eviction(cluster):
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(7))  # 56 GPUs
    vision = [_team_pod(f"vision-{i}", "teams-a", "vision") for i in range(7)]
    cluster.create_pods(vision)
    wait_until("vision at its max of 48 GPUs", lambda: len(cluster.bound_names("teams-a")) == 6, timeout=60)
    refused = (set(p["metadata"]["name"] for p in vision) - cluster.bound_names("teams-a")).pop()
    cluster.wait_event("teams-a", refused, "FailedScheduling", "max", timeout=30)
    cluster.force_delete("teams-a", refused)

    # nlp is guaranteed 32 and uses nothing: 8 free GPUs take its first pod, the second needs vision's borrowed ones.
    cluster.create_pods([_team_pod(f"nlp-{i}", "teams-b", "nlp") for i in range(2)])

    def evicted():
        return [p["metadata"]["name"] for p in cluster.pods("teams-a") if p["metadata"].get("deletionTimestamp")] \
            or len(cluster.bound_names("teams-a")) < 6
    wait_until("a borrowed vision pod evicted", evicted, timeout=60)
    for pod in cluster.pods("teams-a"):  # the kubelet's part: the evicted pod's containers end
        if pod["metadata"].get("deletionTimestamp"):
            cluster.force_delete("teams-a", pod["metadata"]["name"])
    cluster.wait_bound("teams-b", ["nlp-0", "nlp-1"], timeout=60)
    assert len(cluster.bound_names("teams-a")) == 5
    events = cluster.events("teams-a", next(iter(set(f"vision-{i}" for i in range(7)) - cluster.bound_names("teams-a")
                                                 - {refused})))
    assert any("guarantee" in (e.get("message") or "") for e in events), [e.get("message") for e in events]
