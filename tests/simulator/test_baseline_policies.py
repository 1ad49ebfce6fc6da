"""The FGD paper's baselines and fragmentation on hand-computed nodes (fgd-protocol.md §2.2-2.3).

Two nodes, as in the artifact's unit tests:
  A: 8 GPUs, 96 cores, CPU free 64 cores; GPU free milli [1000 × 6, 500, 0] (a share and a 1-GPU pod)
  B: 2 GPUs, 32 cores, idle
Pod: a 0.3 share of one GPU with 4 cores.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from scheduler.core import filters
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.policies import POLICIES, PolicyContext
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState, Grant
from scheduler.core.workload import TaskType, Workload
from simulator.frag_tracker import FragmentationTracker


def node(name: str, gpus: int, cores: int) -> Node:
    return Node(name, cores * 1000, cores * 8192,
                tuple(Gpu(i, f"{name}-{i}", "G2", 20000, Sharing.TIME_SLICING) for i in range(gpus)))


def two_nodes() -> ClusterState:
    state = ClusterState([node("a", 8, 96), node("b", 2, 32)])
    state.apply(0, Grant((6,), 500, (0,), 8000, 0))      # a share pod: GPU 6 half used
    state.apply(0, Grant((7,), 1000, (20000,), 24000, 0))  # a 1-GPU pod: GPU 7 full
    return state


SHARE = PodRequest(uid="u", namespace="n", name="p", cpu_milli=4000, gpu_milli=300)


def scores(policy: str, pod: PodRequest = SHARE, state: ClusterState | None = None) -> list[float]:
    state = state or two_nodes()
    fit = filters.fit(state, pod, np.arange(2))
    assert fit.fits.all()
    ctx = PolicyContext(workload=Workload.of(Counter([TaskType.of(pod)])), rng=np.random.default_rng(0))
    return POLICIES[policy].score(state, pod, fit.rows, fit.slot_fit, ctx).tolist()


@pytest.mark.parametrize(("policy", "expected"), [
    # ⌊100·(1 − ½·(64−4)/128 − ½·(6.5−0.3)/8)⌋ = ⌊37.81⌋;  B: ⌊100·(1 − ½·28/128 − ½·1.7/8)⌋ = ⌊78.44⌋
    ("bestfit", [37, 78]),
    # ⌊100·(1 − (64/128·4/128 + 6.5/8·0.3/8)/2)⌋ = ⌊97.70⌋;  B: ⌊100·(1 − (32/128·4/128 + 2/8·0.3/8)/2)⌋ = ⌊99.14⌋
    ("dotprod", [97, 99]),
    # A: the tightest GPU that fits is the half-used one: 100 − ⌊⌊500·100/1000⌋/10⌋ = 95;  B idle: max(33 − 2, 2)
    ("packing", [95, 31]),
    # A hosts shares and 1-GPU pods: 50 + ⌊25·(8000 − 6500)/8000⌋ = 54;  B idle: 25 + ⌊25·6000/8000⌋ = 43
    ("clustering", [54, 43]),
])
def test_baseline_scores(policy, expected):
    assert scores(policy) == expected


def test_random_gives_one_node_the_top_score():
    assert sorted(scores("random")) == [0.0, 100.0]
    assert scores("random") == scores("random")  # a pure function of (seed, pod, node)


@pytest.mark.parametrize(("pod", "expected"), [
    # whole GPUs on a busy node: max(50 − 2, 33); B idle: max(33 − 2, 2)
    (PodRequest(uid="u", namespace="n", name="p", cpu_milli=1000, gpus=2), [48, 31]),
    # CPU-only pods score 0 everywhere (kube-scheduler's tie-break decides)
    (PodRequest(uid="u", namespace="n", name="p", cpu_milli=1000), [0, 0]),
], ids=["whole-gpus", "cpu-only"])
def test_packing_tiers(pod, expected):
    assert scores("packing", pod) == expected


def test_clustering_prefers_nodes_of_only_the_same_class():
    state = ClusterState([node("a", 8, 96), node("b", 8, 96)])
    state.apply(0, Grant((0,), 300, (0,), 1000, 0))          # a: shares only
    state.apply(1, Grant((0,), 300, (0,), 1000, 0))          # b: shares and a 2-GPU pod
    state.apply(1, Grant((1, 2), 1000, (20000, 20000), 1000, 0))
    # a: 75 + ⌊25·300/8000⌋ = 75;  b: 50 + ⌊25·2300/8000⌋ = 57
    assert scores("clustering", state=state) == [75, 57]
    assert state.pod_classes[1].tolist()[:3] == [1, 0, 1]


def test_fgd_sends_a_share_to_a_whole_free_gpu_rather_than_split_a_half_used_one():
    # M = this share only. On A's half-used GPU 0.5 -> 0.2 leaves 0.2 nobody can use: Δ = −200 milli,
    # ⌊100·σ(−0.2)⌋ = 45. On a free GPU (1.0 -> 0.7) nothing is stranded: ⌊100·σ(0)⌋ = 50, first such GPU.
    assert scores("fgd") == [50, 50]
    state = two_nodes()
    fit = filters.fit(state, SHARE, np.array([0]))
    ctx = PolicyContext(workload=Workload.of(Counter([TaskType.of(SHARE)])))
    assert POLICIES["fgd"].pick(state, SHARE, 0, fit.slot_fit[0], ctx) == (0,)


def test_fragmentation_of_a_hand_computed_node():
    # Free GPU milli [1000, 500, 200, 0], 10 cores free; U = 1700. Workload (weights):
    #   CPU-only (2 cores) ×1:        F = U = 1700           (a CPU-only task can never use a GPU)
    #   share 0.3 (1 core) ×2:        fits; F = 200 + 0      (GPUs with less than 0.3 free)
    #   1 whole GPU (4 cores) ×1:     fits; F = 500 + 200    (every partly used GPU)
    #   2 whole GPUs (20 cores) ×1:   cannot run; F = U = 1700
    # F(M) = (1700 + 2·200 + 700 + 1700) / 5 = 900 milli-GPU.
    state = ClusterState([Node("n", 16000, 65536, tuple(Gpu(i, f"g{i}", "G2", 20000, Sharing.TIME_SLICING)
                                                         for i in range(4)))])
    state.apply(0, Grant((1,), 500, (0,), 6000, 0))
    state.apply(0, Grant((2,), 800, (0,), 0, 0))
    state.apply(0, Grant((3,), 1000, (0,), 0, 0))
    any_model = ModelSelector()
    workload = Workload((TaskType(2000, 0, 0, any_model), TaskType(1000, 300, 1, any_model),
                         TaskType(4000, 1000, 1, any_model), TaskType(20000, 1000, 2, any_model)),
                        np.array([1.0, 2.0, 1.0, 1.0]))
    tracker = FragmentationTracker(state, workload)
    tracker.update()
    assert tracker.amount_milli == pytest.approx(900.0)
    assert tracker.idle_milli == 1700


def test_fragmentation_counts_a_model_the_task_may_not_use_as_fragment():
    state = ClusterState([Node("n", 16000, 65536, (Gpu(0, "g0", "T4", 15000, Sharing.TIME_SLICING),))])
    workload = Workload((TaskType(1000, 1000, 1, ModelSelector.any_of(["V100M16"])),), np.array([1.0]))
    tracker = FragmentationTracker(state, workload)
    tracker.update()
    assert tracker.amount_milli == 1000.0


def test_tracker_recomputes_only_changed_nodes():
    state = two_nodes()
    tracker = FragmentationTracker(state, Workload.of(Counter([TaskType.of(SHARE)])))
    tracker.update()
    before = tracker.per_node().copy()
    state.apply(1, Grant((0,), 800, (0,), 1000, 0))  # B: one GPU at 0.2, a fragment for a 0.3 share
    tracker.update()
    after = tracker.per_node()
    assert after[0] == before[0] and after[1] == before[1] + 200
