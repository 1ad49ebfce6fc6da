"""What kube-scheduler (and the API server) know about the cluster: nodes and the pods bound to them.

The simulator keeps this view itself, from the allocations the extender records at bind (the
pod annotations of DESIGN §3), exactly as kube-scheduler's cache is fed by the API server. It is
the same in-process and over HTTP, so metrics are computed from one place, and it answers
kube-scheduler's own in-tree filters (NodeResourcesFit: CPU, memory and the `nvidia.com/gpu`
count the device plugin advertises; nodes that are not ready), vectorised over all nodes.

It never decides placement; the extender (the core) does.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from scheduler.core.allocation import Allocation
from scheduler.core.model import Node
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState


class ClusterView:
    def __init__(self, nodes: Iterable[Node]) -> None:
        self.state = ClusterState(nodes)
        self.names = list(self.state.names)
        order = sorted(range(len(self.names)), key=self.names.__getitem__)
        self.name_rank = np.empty(len(self.names), np.int64)
        """Position of each row's name in name order: the order kube-scheduler's tie-break sees."""
        self.name_rank[order] = np.arange(len(self.names))
        self.bound: dict[str, Allocation] = {}
        self.allocated_milli = 0
        self._whole_free = np.zeros(self.state.rows, np.int64)
        """Per row, the `nvidia.com/gpu` the device plugin advertises (present and healthy) less the
        whole GPUs bound pods hold: kept as they change, so the in-tree filter is a comparison."""
        self._whole_free[:self.size] = (self.state.present & self.state.healthy).sum(1)[:self.size]

    @property
    def size(self) -> int:
        return self.state.size

    @property
    def capacity_milli(self) -> int:
        """GPU milli of every GPU present (healthy or not): the denominator of allocation ratios."""
        return int(self.state.present[:self.size].sum()) * 1000

    # ------------------------------------------------------------- the books
    def bind(self, alloc: Allocation) -> None:
        row = self.state.index[alloc.node]
        self.state.restore(row, alloc.grant)  # the record wins, as in the extender
        self.bound[alloc.uid] = alloc
        self.allocated_milli += alloc.gpu_milli_total
        if not alloc.share:
            self._whole_free[row] -= len(alloc.slots)

    def delete(self, uid: str) -> Allocation | None:
        alloc = self.bound.pop(uid, None)
        if alloc is None:
            return None
        row = self.state.index[alloc.node]
        self.state.release(row, alloc.grant)
        self.allocated_milli -= alloc.gpu_milli_total
        if not alloc.share:
            self._whole_free[row] += len(alloc.slots)
        return alloc

    def replace_node(self, node: Node) -> None:
        """A node changed (a GPU turned unhealthy, or came back): rebuild its row, keep its pods."""
        row = self.state.index[node.name]
        self.state.replace_node(row, node)
        self.state.set_unavailable(row, bool(node.unavailable_reason))
        self._whole_free[row] = int((self.state.present[row] & self.state.healthy[row]).sum())
        for alloc in self.bound.values():
            if alloc.node == node.name:
                self.state.restore(row, alloc.grant)
                if not alloc.share:
                    self._whole_free[row] -= len(alloc.slots)

    # ------------------------------------------------------ in-tree filtering
    def in_tree(self, pod: PodRequest) -> np.ndarray:
        """bool [size]: the rows that pass kube-scheduler's own filters."""
        n = self.size
        s = self.state
        ok = (s.cpu_free[:n] >= pod.cpu_milli) & (s.mem_free[:n] >= pod.memory_mib) & ~s.unavailable[:n]
        if pod.gpus:
            ok &= self._whole_free[:n] >= pod.gpus
        return ok
