"""The fragmentation measure on nodes computed by hand (fgd-protocol.md §2.2)."""

from collections import Counter

import numpy as np
import pytest

from scheduler.core import fragmentation as frag
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState, Grant
from scheduler.core.workload import TaskType, Workload
from tests.builders import node

ANY = ModelSelector()


def node_with(free: list[int], *, cpu: int = 32000, model: str = "G2"):
    state = ClusterState([node("n").gpus(len(free), model=model, sharing="time-slicing").cpu(cpu).build()])
    for slot, left in enumerate(free):
        if left < 1000:
            state.apply(0, Grant((slot,), 1000 - left, (0,), 0, 0))
    return state


def fragmentation(state, types: dict[TaskType, int]) -> float:
    workload = Workload.of(Counter(types), coverage=1.0)
    tasks = frag.task_matrix(state, workload)
    return float(frag.node_fragmentation(state, np.array([0]), tasks)[0]) / tasks.total


# One node with free shares [1000, 500, 200, 0] milli (U = 1700):
CASES = [
    # a CPU-only task can never use GPUs: everything idle is fragment
    ({TaskType(1000, 0, 0, ANY): 1}, 1700),
    # a 300-milli share: only the 200 left on GPU 2 is too small
    ({TaskType(1000, 300, 1, ANY): 1}, 200),
    # a whole GPU: the 500 and the 200 are fragments; the free GPU is not
    ({TaskType(1000, 1000, 1, ANY): 1}, 700),
    # two whole GPUs cannot run here at all: all 1700
    ({TaskType(1000, 1000, 2, ANY): 1}, 1700),
    # a task for another model: all 1700
    ({TaskType(1000, 300, 1, ModelSelector.any_of(["T4"])): 1}, 1700),
    # a task needing more CPU than is free: all 1700
    ({TaskType(64000, 300, 1, ANY): 1}, 1700),
    # the mix: (1 × 200 + 3 × 700) / 4 = 575
    ({TaskType(1000, 300, 1, ANY): 1, TaskType(1000, 1000, 1, ANY): 3}, 575),
]


@pytest.mark.parametrize(("types", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_node_fragmentation_by_hand(types, expected):
    assert fragmentation(node_with([1000, 500, 200, 0]), types) == pytest.approx(expected)


def test_an_empty_node_is_not_fragmented_for_whole_gpu_work():
    assert fragmentation(node_with([1000] * 8), {TaskType(1000, 1000, 8, ANY): 1}) == 0


def test_unhealthy_gpus_hold_no_capacity():
    state = ClusterState([node("n").gpus(1, healthy=False).gpus(1).build()])
    assert fragmentation(state, {TaskType(0, 0, 0, ANY): 1}) == 1000


def test_typical_workload_keeps_the_popular_shapes_covering_95_percent():
    counts = Counter({TaskType(1, 1000, 1, ANY): 60, TaskType(2, 500, 1, ANY): 36, TaskType(3, 0, 0, ANY): 4})
    workload = Workload.of(counts, coverage=0.95)
    assert [t.cpu_milli for t in workload.types] == [1, 2]
    assert workload.weights.tolist() == [60, 36]


def test_the_learned_mix_is_republished_only_when_it_moves():
    from scheduler.core.workload import WorkloadMix
    from tests.builders import pod

    mix = WorkloadMix(refresh_every=10, drift=0.05)
    for i in range(10):
        mix.observe(pod(f"a{i}").gpus(1).request())
    first = mix.snapshot()
    for i in range(10):  # the same mix again: the published M stays (score caches stay warm)
        mix.observe(pod(f"b{i}").gpus(1).request())
    assert mix.snapshot() is first
    for i in range(10):  # now a third of the pods are shares: M follows
        mix.observe(pod(f"c{i}").share(500).request())
    moved = mix.snapshot()
    assert moved is not first and len(moved.types) == 2
