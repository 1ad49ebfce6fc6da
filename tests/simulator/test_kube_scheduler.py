"""kube-scheduler's emulation: in-tree filters, skipping prioritize for one node, tie-breaks."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.request import PodRequest
from simulator.backends import InProcess
from simulator.cluster_view import ClusterView
from simulator.kube_scheduler import IN_TREE_REASON, KubeScheduler, TieBreak


def nodes(n: int, gpus: int = 2) -> list[Node]:
    return [Node(f"node-{i:02d}", 16000, 65536, tuple(Gpu(g, f"g{i}-{g}", "A100", 81920, Sharing.TIME_SLICING)
                                                      for g in range(gpus))) for i in range(n)]


def scheduler(cluster: list[Node], tie_break: TieBreak, *, seed: int = 1, policy: str = "packing") -> KubeScheduler:
    view = ClusterView(cluster)
    engine = Engine(cluster, settings=EngineSettings(policy=policy, seed=seed))
    return KubeScheduler(view, InProcess(engine, view.names), seed=seed, tie_break=tie_break)


def test_node_order_tie_break_is_one_random_order_kept_for_the_run():
    ks = scheduler(nodes(6), TieBreak.NODE_ORDER, seed=4)
    tied = np.arange(6)
    first = ks.select_host(tied)
    assert ks.node_order[first] == 0  # the first node of the run's order ...
    assert all(ks.select_host(tied) == first for _ in range(20))  # ... every time
    assert ks.select_host(np.array([r for r in tied if r != first])) != first
    orders = {tuple(scheduler(nodes(6), TieBreak.NODE_ORDER, seed=s).node_order) for s in range(8)}
    assert len(orders) > 1  # the order depends on the seed


def test_uniform_tie_break_draws_among_ties_reproducibly():
    picks = [scheduler(nodes(4), TieBreak.UNIFORM, seed=9).select_host(np.arange(4)) for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same draw
    ks = scheduler(nodes(4), TieBreak.UNIFORM, seed=9)
    counts = Counter(ks.select_host(np.arange(4)) for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 850


def test_in_tree_filters_stop_a_pod_before_the_extender_is_asked():
    ks = scheduler(nodes(3), TieBreak.UNIFORM)
    too_much_cpu = PodRequest(uid="u", namespace="n", name="p", cpu_milli=32000, gpus=1)
    outcome = asyncio.run(ks.schedule(too_much_cpu))
    assert outcome.alloc is None and outcome.reasons == {IN_TREE_REASON: 3}


def test_one_feasible_node_is_taken_without_scoring():
    ks = scheduler(nodes(3), TieBreak.UNIFORM, policy="random")
    for i in range(2):  # two of the three 2-GPU nodes taken whole
        assert asyncio.run(ks.schedule(PodRequest(uid=f"f{i}", namespace="n", name=f"f{i}", gpus=2))).alloc
    scored = []
    best = ks.backend.best

    async def spy(pod, rows):
        scored.append(len(rows))
        return await best(pod, rows)

    ks.backend.best = spy
    alloc = asyncio.run(ks.schedule(PodRequest(uid="last", namespace="n", name="last", gpus=2))).alloc
    assert alloc is not None and scored == []  # kube-scheduler does not score a single feasible node
