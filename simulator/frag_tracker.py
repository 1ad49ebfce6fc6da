"""The cluster's GPU fragmentation against a workload M, kept per node and updated incrementally.

`update()` recomputes F_n(M) (`scheduler.core.fragmentation`) only for the rows whose version
changed since the last call, so measuring after every pod costs one or two nodes, never the
whole cluster (the FGD artifact rebuilt a whole-cluster report after every pod, which dominated
its run time). Units are the paper's: milli-GPU, workload frequencies summing to 1.
"""

from __future__ import annotations

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload


class FragmentationTracker:
    def __init__(self, state: ClusterState, workload: Workload) -> None:
        self.state = state
        self.workload = workload
        self._structure = -1
        self._node = np.zeros(0)
        self._seen = np.zeros(0, np.int64)

    def update(self) -> None:
        s = self.state
        if self._structure != s.structure_version or len(self._seen) != s.rows:
            self._tasks = frag.task_matrix(s, self.workload)
            self._structure = s.structure_version
            self._node = np.zeros(s.rows)
            self._seen = np.full(s.rows, -1, np.int64)
        stale = (self._seen != s.version).nonzero()[0]
        if len(stale):
            self._node[stale] = frag.node_fragmentation(s, stale, self._tasks)
            self._seen[stale] = s.version[stale]

    @property
    def amount_milli(self) -> float:
        """F(M) = Σ_n F_n(M): idle GPU milli that the typical pods cannot use."""
        return float(self._node.sum()) / self._tasks.total

    @property
    def idle_milli(self) -> int:
        return int(frag.free_share(self.state, np.arange(self.state.size)).sum())

    def per_node(self) -> np.ndarray:
        """F_n(M) for every row (milli-GPU)."""
        return self._node[:self.state.size] / self._tasks.total
