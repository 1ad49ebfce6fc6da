"""kube-scheduler, emulated: one scheduling cycle per pod, as the default profile with the gpusched
extender runs it (reference/extender-protocol.md), every node scored (percentageOfNodesToScore 100,
as the FGD experiments configure it).

1. in-tree filters on kube-scheduler's own view (`ClusterView.in_tree_candidates`); when no node
   passes, the extender is not called at all
2. the extender's filter over the survivors
3. exactly one feasible node: it is taken without scoring (kube-scheduler skips scoring then)
4. otherwise the extender's prioritize, and the top score wins; ties are broken by `TieBreak`:
   - UNIFORM, upstream kube-scheduler's selectHost: one of the tied nodes drawn uniformly, here with
     a seeded generator over the tied nodes in name order (reproducible, and the same in both modes)
   - NODE_ORDER, the FGD artifact's kube-scheduler fork (vendored v1.20.5-minor, selectHost "for
     reproducibility, choose the smallest lexicographical order"), whose nodes are renamed with a
     `%04d-` prefix from a seeded permutation: a random node order drawn once per run, the first
     tied node in that order wins. This order acts as a consistent secondary preference, which
     the published FGD numbers depend on (uniform ties leave FGD at ~10 % unallocated, not ~5 %)
5. the extender's bind; the view records the allocation the extender committed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from scheduler.core.allocation import Allocation
from scheduler.core.request import PodRequest
from simulator.backends import Backend
from simulator.cluster_view import ClusterView

TIE_BREAK_STREAM = 0x5E1EC7
IN_TREE_REASON = "kube-scheduler: insufficient CPU, memory or nvidia.com/gpu, or node not ready"


class TieBreak(Enum):
    UNIFORM = "uniform"
    NODE_ORDER = "node-order"


@dataclass(frozen=True)
class Outcome:
    alloc: Allocation | None
    reasons: Mapping[str, int] = field(default_factory=dict)
    """When not placed: kube-scheduler's "0/N nodes are available" histogram."""
    error: str = ""
    """A refused bind (the pod goes back to the queue)."""


class KubeScheduler:
    def __init__(self, view: ClusterView, backend: Backend, *, seed: int, tie_break: TieBreak = TieBreak.UNIFORM,
                 node_order: np.ndarray | None = None) -> None:
        """`node_order` (NODE_ORDER only): each row's rank; by default a seeded permutation of the name order."""
        self.view = view
        self.backend = backend
        self.tie_break = tie_break
        self.rng = np.random.default_rng([seed, TIE_BREAK_STREAM])
        if node_order is None and tie_break is TieBreak.NODE_ORDER:
            node_order = self.rng.permutation(view.size)[view.name_rank]
        self.node_order = node_order

    async def schedule(self, pod: PodRequest) -> Outcome:
        candidates = self.view.in_tree(pod)
        passed = int(np.count_nonzero(candidates))
        if not passed:
            return Outcome(None, {IN_TREE_REASON: self.view.size})
        filtered = await self.backend.filter(pod, candidates)
        feasible = filtered.feasible
        if not len(feasible):
            reasons = dict(filtered.reasons)
            if passed < self.view.size:
                reasons[IN_TREE_REASON] = self.view.size - passed
            return Outcome(None, reasons)
        row = int(feasible[0]) if len(feasible) == 1 else self.select_host(await self.backend.best(pod, feasible))
        result = await self.backend.bind(pod, row)
        if isinstance(result, str):
            return Outcome(None, error=result)
        self.view.bind(result)
        return Outcome(result)

    def select_host(self, tied: np.ndarray) -> int:
        if len(tied) == 1:
            return int(tied[0])
        if self.node_order is not None:
            return int(tied[np.argmin(self.node_order[tied])])
        ordered = tied[np.argsort(self.view.name_rank[tied], kind="stable")]
        return int(ordered[self.rng.integers(len(ordered))])

    async def delete(self, uid: str) -> Allocation | None:
        """A pod ended or was evicted: the API server forgets it, the extender releases it."""
        alloc = self.view.delete(uid)
        await self.backend.release(uid)
        return alloc
