"""packing: shared GPUs first, then free GPUs of busy nodes, then idle nodes (the FGD paper's
GpuPacking baseline).

The GPUs the pod would use are taken tightest first (the least free capacity that fits). With F
the node's fully free GPUs and N its usable GPUs, in three tiers:

    1. only partly used GPUs needed:  max(100 − ⌊Σ_used ⌊free·100/1000⌋ / 10⌋, 50)
    2. fully free GPUs of a busy node: max(50 − (fully free GPUs used), 33)
    3. an idle node (F = N):          max(33 − F, F)   (smaller idle nodes first)

CPU-only pods score 0 everywhere. Integer arithmetic exactly as the artifact's plugin.
GPU inside the node: best-fit.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term, pick_best_fit
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

MAX_SCORE = 100


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    if not pod.wants_gpu:
        return np.zeros(len(rows))
    fully_free, idle, free_used, shared_score = tier_inputs(state, pod, rows, slot_fit)
    out = np.where(free_used > 0, np.maximum(MAX_SCORE // 2 - free_used, MAX_SCORE // 3),
                   np.maximum(shared_score, MAX_SCORE // 2))
    out = np.where(idle, np.maximum(MAX_SCORE // 3 - fully_free, fully_free), out)
    return out.astype(np.float64)


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    """One term per tier; a node scores in exactly one of them (0 in the others)."""
    scores = score(state, pod, rows, slot_fit, ctx)
    if not pod.wants_gpu:
        return Breakdown((Term("a CPU-only pod: no tier", 1.0, scores),))
    _, idle, free_used, _ = tier_inputs(state, pod, rows, slot_fit)
    tiers = (("tier 1: only partly used GPUs", ~idle & (free_used == 0)),
             ("tier 2: free GPUs of a busy node", ~idle & (free_used > 0)),
             ("tier 3: an idle node", idle))
    return Breakdown(tuple(Term(name, 1.0, np.where(where, scores, 0.0)) for name, where in tiers))


def tier_inputs(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(fully free GPUs, idle node?, fully free GPUs the pod takes, tier-1 score) per row, for a GPU pod."""
    usable = state.usable[rows]
    free = state.free_milli[rows]
    fully_free = (usable & (free == MILLI_PER_GPU)).sum(1)
    idle = fully_free == usable.sum(1)
    if pod.is_share:
        tightest = np.where(slot_fit, free, MILLI_PER_GPU + 1).min(1)
        free_used = np.where(tightest == MILLI_PER_GPU, 1, 0)
        shared_score = MAX_SCORE - (tightest * 100 // MILLI_PER_GPU) // 10
    else:
        free_used = np.full(len(rows), pod.gpus)
        shared_score = np.full(len(rows), MAX_SCORE)
    return fully_free, idle, free_used, shared_score


POLICY = Policy("packing", "shared GPUs first, then free GPUs of busy nodes, then idle nodes (FGD paper baseline)",
                score, pick_best_fit, explain)
