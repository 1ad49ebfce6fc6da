"""What kube-scheduler shows a user: the extender's reasons, gangs that wait whole, a burst of binds."""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.cluster import gang_pods, held_gpus, node_object, pod_object
from tests.cluster.controlplane import wait_until

pytestmark = pytest.mark.xdist_group("control-plane")


def test_an_unfittable_pod_gets_the_extenders_reason_in_its_event(cluster):
    cluster.add_nodes([node_object("a100-0")])
    cluster.create_pods([pod_object("h100-only", "verdicts", gpus=1,
                                    annotations={"gpusched.io/gpu-model": "H100*"})])
    message = cluster.wait_event("verdicts", "h100-only", "FailedScheduling", "GPU model not allowed", timeout=30)
    assert "a100-0" in message or "1 node" in message, message
    assert not cluster.bound_names("verdicts")


def test_two_gangs_that_fit_one_at_a_time_bind_whole_one_after_the_other(cluster):
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(2))  # 16 GPUs: one gang of 4 x 4 at a time
    first = gang_pods("first", "gangs", 4, gpus=4)
    second = gang_pods("second", "gangs", 4, gpus=4)
    cluster.create_pods(first + second)
    names = {"first": [p["metadata"]["name"] for p in first], "second": [p["metadata"]["name"] for p in second]}

    def whole_one() -> str | None:
        """The gang bound whole, if one is; fails if both ever have members bound (16 GPUs fit one)."""
        bound = cluster.bound_names("gangs")
        started = [gang for gang, members in names.items() if bound & set(members)]
        assert len(started) <= 1, f"both gangs partly bound: {sorted(bound)}"
        return next((gang for gang in started if set(names[gang]) <= bound), None)

    winner = wait_until("one whole gang bound", whole_one, timeout=30)
    loser = "second" if winner == "first" else "first"
    time.sleep(2)
    assert not cluster.bound_names("gangs") & set(names[loser]), "the second gang was partly bound"
    for name in names[winner]:
        cluster.force_delete("gangs", name)  # the first job ends
    pods = cluster.wait_bound("gangs", names[loser], timeout=60)
    assert all(len(h) == 1 for h in held_gpus(pods.values()).values())


def test_a_burst_of_300_pods_binds_with_no_extender_timeout(cluster, live):
    log = cluster.scheduler_log
    timeouts_before = _timeouts(log)
    late_before = _late(live.extender.metrics())
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(50))
    pods = [pod_object(f"burst-{i}", "burst", gpus=1) for i in range(300)]
    start = time.monotonic()
    cluster.create_pods(pods)
    bound = cluster.wait_bound("burst", [p["metadata"]["name"] for p in pods], timeout=180)
    took = time.monotonic() - start
    print(f"300 pods bound in {took:.1f}s ({300 / took:.0f} pods/s)")
    assert all(len(h) == 1 for h in held_gpus(bound.values()).values())
    assert _timeouts(log) == timeouts_before, "kube-scheduler saw extender timeouts"
    assert _late(live.extender.metrics()) == late_before


def _timeouts(log) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if "Client.Timeout" in line or "context deadline exceeded" in line)


def _late(metrics: str) -> float:
    found = re.search(r"^gpusched_bind_late_total ([0-9.e+]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0
