"""Killing the extender (SIGKILL) mid-gang and mid-burst: the books come back identical, nothing doubled."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.cluster.cluster import gang_pods, held_gpus, node_object, pod_object
from tests.cluster.controlplane import wait_until


def books(state: dict) -> dict:
    """What must be identical after a restart: all of /state but the history of ended reservations
    and counters of this process's own life."""
    return {k: v for k, v in state.items() if k not in ("gangHistory", "stats", "kube")}

pytestmark = pytest.mark.xdist_group("control-plane")


def test_a_gang_reservation_survives_a_sigkill_of_the_extender(cluster, live_scheduler_pid):
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(2))
    members = gang_pods("survivor", "gangs", 8, gpus=1)
    cluster.create_pods(members[:-1])
    cluster.wait_event("gangs", "survivor-0", "FailedScheduling", "members", timeout=30)
    cluster.create_pods(members[-1:])
    # Freeze kube-scheduler as soon as the plan is reserved, so the kill lands with members unbound.
    wait_until("the gang's reservation", lambda: _reservation(cluster.extender.get("/state")),
                          timeout=30, interval=0.02)
    os.kill(live_scheduler_pid, signal.SIGSTOP)
    try:
        before = settled_state(cluster.extender)  # a bind already under way finishes first
        unbound = 8 - len(cluster.bound_names("gangs"))
        assert unbound > 0, "every member bound before kube-scheduler could be paused"
        cluster.extender.kill(signal.SIGKILL)
        cluster.extender.start()
        after = cluster.extender.get("/state")
        assert _reservation(after) == _reservation(before) is not None
        assert books(after) == books(before)
    finally:
        os.kill(live_scheduler_pid, signal.SIGCONT)
    pods = cluster.wait_bound("gangs", [m["metadata"]["name"] for m in members], timeout=30)
    assert all(len(holders) == 1 for holders in held_gpus(pods.values()).values())


def test_a_burst_survives_a_sigkill_of_the_extender(cluster):
    cluster.add_nodes(node_object(f"gpu-{i}") for i in range(8))
    pods = [pod_object(f"b-{i}", "burst", gpus=1) for i in range(60)]
    cluster.create_pods(pods)
    wait_until("a third of the burst bound", lambda: len(cluster.bound_names("burst")) >= 20, timeout=60)
    cluster.extender.kill(signal.SIGKILL)
    cluster.extender.start()
    bound = cluster.wait_bound("burst", [p["metadata"]["name"] for p in pods], timeout=120)
    holders = held_gpus(bound.values())
    assert len(holders) == 60 and all(len(h) == 1 for h in holders.values())
    before = cluster.extender.get("/state")
    cluster.extender.kill(signal.SIGKILL)
    cluster.extender.start()
    assert books(cluster.extender.get("/state")) == books(before)


def settled_state(extender, quiet_s: float = 0.5) -> dict:
    """/state once it has not changed for `quiet_s` (binds in flight have landed)."""
    last, since = extender.get("/state"), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = extender.get("/state")
        if books(now) != books(last):
            last, since = now, time.monotonic()
    return last


def _reservation(state: dict):
    for gang in state.get("gangs") or []:
        if gang.get("reservation"):
            return gang["reservation"]
    return None
