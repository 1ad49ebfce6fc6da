"""The gang of 4 again, with kube-scheduler's `SchedulerQueueingHints` off (on by default in v1.28):
the requeue of parked members must not depend on which queueing path kube-scheduler takes."""

from __future__ import annotations

import time

import pytest

from tests.cluster.cluster import Cluster, gang_pods, held_gpus, node_object
from tests.cluster.test_gangs import BIND_WITHIN_S

pytestmark = pytest.mark.xdist_group("control-plane")


@pytest.fixture(scope="module")
def live(plane, replicas) -> Cluster:
    replica = replicas.start("replica-a", scheduler_args="--feature-gates=SchedulerQueueingHints=false")
    replicas.serve_webhook_from(replica)
    return Cluster(plane, [replica.extender], scheduler_log=replica.scheduler_log)


def test_a_gang_of_4_binds_within_seconds_without_queueing_hints(cluster):
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(2))
    members = gang_pods("no-hints", "gangs", 4, gpus=2)
    cluster.create_pods(members[:-1])
    cluster.wait_event("gangs", "no-hints-0", "FailedScheduling", "members", timeout=30)
    start = time.monotonic()
    cluster.create_pods(members[-1:])
    pods = cluster.wait_bound("gangs", [m["metadata"]["name"] for m in members], timeout=BIND_WITHIN_S)
    print(f"gang of 4 (queueing hints off) bound {time.monotonic() - start:.1f}s after its last member")
    assert all(len(v) == 1 for v in held_gpus(pods.values()).values())
