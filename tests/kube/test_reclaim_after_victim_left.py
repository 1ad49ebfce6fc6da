"""A reclaim plan sees room a victim left behind on a node that hosts no other candidate.

Found on the real control plane: after the first victim of a reclaim was gone, its node held no
borrowed pod any more, so the planner (which looked only at nodes hosting candidates) named a
second victim for the same waiting pod, and the reclaimer evicted it.
"""

from __future__ import annotations

from scheduler.core.engine import Engine
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.core.reclaim_plans import current_plans
from scheduler.kube.cache import NODES, PODS, CacheSettings, ClusterCache
from tests.kube.objects import bound, node, pod
from tests.kube.test_cache import NOW

TEAMS = QuotaConfig((Team("vision", 0, None), Team("nlp", 4000, None)))


def test_no_victim_once_a_victim_left_room_on_a_node_without_candidates():
    cache = ClusterCache(Engine(quotas=TEAMS), clock=lambda: NOW, settings=CacheSettings())
    cache.replace(NODES, [node("a", gpus=2), node("b", gpus=2)])
    vision = {n: bound(pod(f"v-{n}", gpus=2, labels={"gpusched.io/team": "vision"}), n,
                       gpus=f"GPU-{n}-0,GPU-{n}-1", node=n, borrowed="true") for n in ("a", "b")}
    waiting = pod("nlp", gpus=2, labels={"gpusched.io/team": "nlp"})
    cache.replace(PODS, [*vision.values(), waiting])
    (plan,) = current_plans(cache.engine.gates)
    assert len(plan.victims) == 1  # the cluster is full: one borrowed pod must go
    gone = plan.victims[0].pods[0].split("/")[1]
    cache.apply(PODS, "DELETED", vision[gone.removeprefix("v-")])
    (plan,) = current_plans(cache.engine.gates)
    assert not plan.victims, f"a second victim for the same pod: {plan.victims}"
