"""Which GPUs inside the chosen node."""

import numpy as np
import pytest

from scheduler.core import gpu_pick
from scheduler.core.model import Gpu, Node
from scheduler.core.state import ClusterState, Grant
from tests.builders import node


def dgx_two_islands() -> Node:
    """8 GPUs as two NVLink islands of 4 (0-3, 4-7), as on many PCIe-switch boards."""
    gpus = tuple(Gpu(i, f"G{i}", "A100", 81920, nvlink_peers=tuple(j for j in range(8) if j != i and j // 4 == i // 4))
                 for i in range(8))
    return Node("dgx", 128000, 1 << 20, gpus)


def free_slots(state, row):
    return (state.free_milli[row] == 1000) & state.usable[row]


@pytest.mark.parametrize(("busy", "count", "expected"), [
    ((), 4, (0, 1, 2, 3)),             # a whole island
    ((0,), 4, (4, 5, 6, 7)),           # the island still whole, not 3 + 1 across
    ((0,), 2, (1, 2)),                 # from the broken island, keeping the whole one intact
    ((0,), 1, (1,)),
    ((0, 4), 3, (1, 2, 3)),
    ((0, 1, 4), 4, (2, 5, 6, 7)),      # 3 links (5-6-7 triangle) beat 2 + 2 (2 links)
], ids=str)
def test_whole_gpus_prefer_nvlink_connected_sets(busy, count, expected):
    state = ClusterState([dgx_two_islands()])
    for slot in busy:
        state.apply(0, Grant((slot,), 1000, (81920,), 0, 0))
    assert gpu_pick.whole_gpus(state, 0, free_slots(state, 0), count) == expected


def test_without_nvlink_the_lowest_free_indices():
    state = ClusterState([node("n").gpus(8).build()])
    state.apply(0, Grant((1,), 1000, (81920,), 0, 0))
    assert gpu_pick.whole_gpus(state, 0, free_slots(state, 0), 3) == (0, 2, 3)


def test_share_best_fit_and_worst_fit():
    state = ClusterState([node("n").gpus(3, sharing="mps").build()])
    state.apply(0, Grant((0,), 600, (0,), 0, 0))   # 400 left
    state.apply(0, Grant((1,), 300, (0,), 0, 0))   # 700 left
    fits = state.free_milli[0] >= 300
    assert gpu_pick.share_best_fit(state, 0, fits) == 0
    assert gpu_pick.share_worst_fit(state, 0, fits) == 2


def test_asking_for_more_than_free_is_a_caller_bug():
    state = ClusterState([node("n").gpus(2).build()])
    with pytest.raises(ValueError):
        gpu_pick.whole_gpus(state, 0, np.array([True, False]), 2)
