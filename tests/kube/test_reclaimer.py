"""The reclaimer waits for the pods it evicted to be gone before it evicts more.

An evicted pod terminates for up to its grace period and holds its GPUs in the books until then,
so the next plan, made on those books, names another victim for the same shortage: without the
wait, every round evicted one more borrowed pod than the waiting pod needed.
"""

from __future__ import annotations

from types import SimpleNamespace

from scheduler.kube.reclaimer import EVICTED, Reclaimer, Victim


class EvictionApi:
    def __init__(self) -> None:
        self.evicted: list[str] = []
        self.core = SimpleNamespace(create_namespaced_pod_eviction=None)

    async def call(self, operation, method, name, namespace, body):
        self.evicted.append(name)
        return {}


def victim(name: str) -> Victim:
    return Victim(f"uid-{name}", "ml", name, "team nlp needs its guarantee back")


async def test_no_new_eviction_while_an_evicted_pod_is_still_terminating():
    api = EvictionApi()
    plan = [victim("v1")]
    terminating: set[str] = set()
    reclaimer = Reclaimer(api, plan=lambda: plan, is_leader=lambda: True,
                          terminating=lambda uid: uid in terminating, clock=lambda: now)
    now = 0.0
    assert await reclaimer.reclaim_once() == {"uid-v1": EVICTED}
    terminating.add("uid-v1")
    plan[:] = [victim("v2")]  # the books still count v1's GPUs: the next plan names someone else
    now = 5.0
    assert await reclaimer.reclaim_once() == {}
    assert api.evicted == ["v1"]
    terminating.clear()  # v1 is gone: its GPUs are free; a plan still short evicts again
    now = 6.0
    assert await reclaimer.reclaim_once() == {"uid-v2": EVICTED}


async def test_a_pod_stuck_terminating_holds_reclaim_back_only_so_long():
    api = EvictionApi()
    plan = [victim("v1")]
    reclaimer = Reclaimer(api, plan=lambda: plan, is_leader=lambda: True, terminating=lambda uid: True,
                          clock=lambda: now, stuck_after_s=300)
    now = 0.0
    await reclaimer.reclaim_once()
    plan[:] = [victim("v2")]
    now = 299.0
    assert await reclaimer.reclaim_once() == {}
    now = 301.0  # a finalizer that never clears must not stop reclaim for good
    assert await reclaimer.reclaim_once() == {"uid-v2": EVICTED}


async def test_the_pod_reclaimed_for_is_requeued_once_its_victims_are_gone():
    api = EvictionApi()
    freed: list[str] = []
    terminating = {"uid-v1"}
    reclaimer = Reclaimer(api, plan=lambda: [Victim("uid-v1", "ml", "v1", "why", for_pod="ml/nlp-1")],
                          is_leader=lambda: True, terminating=lambda uid: uid in terminating, on_freed=freed.append)
    await reclaimer.reclaim_once()
    await reclaimer.reclaim_once()
    assert freed == []  # still terminating: its GPUs are not back yet
    terminating.clear()
    await reclaimer.reclaim_once()
    assert freed == ["ml/nlp-1"]  # kube-scheduler parked it; it is told to try again now
