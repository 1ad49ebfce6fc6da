"""Two replicas with leader election: the leader killed, the other takes over and binds, a gang
reservation made by the old leader included."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.cluster.cluster import Cluster, gang_pods, held_gpus, node_object, pod_object
from tests.cluster.controlplane import wait_until

pytestmark = pytest.mark.xdist_group("control-plane")


def _holder(cluster: Cluster, lease: str) -> str:
    out = cluster.plane.kubectl("-n", "gpu-system", "get", "lease", lease, "-o",
                                "jsonpath={.spec.holderIdentity}", check=False)
    return out.stdout.strip()


def test_the_standby_takes_over_a_killed_leader_and_completes_its_gang(plane, replicas):
    a = replicas.start("replica-a")
    replicas.serve_webhook_from(a)
    b = replicas.start("replica-b")
    cluster = Cluster(plane, [a.extender, b.extender])
    cluster.reset()
    wait_until("a kube-scheduler leading", lambda: _holder(cluster, "gpu-scheduler"), timeout=30)
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(2))
    members = gang_pods("handover", "gangs", 8, gpus=1)
    cluster.create_pods(members[:-1])
    cluster.wait_event("gangs", "handover-0", "FailedScheduling", "members", timeout=30)
    leader = replicas.scheduler_pid("replica-a")
    cluster.create_pods(members[-1:])
    wait_until("the gang's reservation on the standby", lambda: _reserved(b.extender.get("/state")),
               timeout=30, interval=0.02)
    os.kill(leader, signal.SIGSTOP)  # the leader dies with members unbound: SIGKILL it while frozen
    os.kill(leader, signal.SIGKILL)
    a.extender.kill(signal.SIGKILL)
    replicas.serve_webhook_from(b)  # the Service's endpoints now name the survivor only
    start = time.monotonic()
    pods = cluster.wait_bound("gangs", [m["metadata"]["name"] for m in members], timeout=60)
    print(f"gang completed by the standby {time.monotonic() - start:.1f}s after the leader was killed")
    assert all(len(h) == 1 for h in held_gpus(pods.values()).values())
    cluster.create_pods([pod_object("after", "gangs", gpus=1)])
    cluster.wait_bound("gangs", ["after"], timeout=30)


def _reserved(state: dict) -> bool:
    return any(g.get("reservation") for g in state.get("gangs") or [])
