"""Row versions: equal versions mean equal contents, across a state and its what-if copies."""

from __future__ import annotations

from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.state import ClusterState, Grant


def test_a_copy_never_reuses_a_version_the_original_will_reach():
    state = ClusterState([Node("n", 8000, 8192, tuple(Gpu(i, f"g{i}", "A100", 1000, Sharing.MPS) for i in range(2)))])
    trial = state.copy()
    trial.apply(0, Grant((1,), 500, (0,), 0, 0))  # a plan on the copy: GPU 1 half used there
    state.apply(0, Grant((0,), 500, (0,), 0, 0))  # the books move on: GPU 0 half used here
    # Same number of changes, different contents: a cache keyed on (row, version) must tell them apart.
    assert trial.version[0] != state.version[0]
    assert trial.free_milli[0].tolist() != state.free_milli[0].tolist()
