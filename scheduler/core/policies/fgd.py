"""fgd: fragmentation gradient descent (Weng et al., USENIX ATC'23), as in the paper's artifact.

For each fitting node, the growth of its fragmentation against the workload M if the pod lands
there: Δ = F_{n'}(M) − F_n(M) (see `fragmentation`). A share tries every GPU with room and keeps
the one with the best score (that GPU is also the pick); whole GPUs take fully free ones.

score = ⌊100 · sigmoid(−Δ / 1000)⌋, Δ in milli-GPU weighted by the frequencies of M: an integer,
like the artifact's kube-scheduler plugin, so near-equal nodes tie and the caller's tie-break
decides among them, as kube-scheduler's random pick does there.

M comes from the context (the trace's typical pods in the simulator, the pods seen so far in the
extender); before anything is seen, M is the pod itself.

Speed: a share's per-GPU what-if is computed from per-(node, type) aggregates, changing only the
GPU it lands on (O(B·G·M), no B·G·G·M copy). Scores are cached per pod shape and node version in
the context's memo, so steady-state cost is the nodes that changed since the last pod of that shape.
"""

from __future__ import annotations

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core import gpu_pick
from scheduler.core.policies import node_memo
from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term, with_rounding
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    scores, _ = node_memo.cached(state, pod, rows, slot_fit, ctx, namespace="fgd", compute=score_rows)
    return scores


def pick(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray, ctx: PolicyContext) -> tuple[int, ...]:
    if pod.is_share:
        _, slots = node_memo.cached(state, pod, np.array([row]), slot_fit[None, :], ctx, namespace="fgd",
                                    compute=score_rows)
        return (int(slots[0]),)
    if pod.gpus:
        return gpu_pick.whole_gpus(state, row, slot_fit, pod.gpus)
    return ()


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    """100 · sigmoid(x) and the integer bin it falls in; x is the reduction on the picked GPU."""
    scores, slots = node_memo.cached(state, pod, rows, slot_fit, ctx, namespace="fgd", compute=score_rows)
    tasks = node_memo.tasks_of(state, node_memo.workload_of(pod, ctx), ctx)
    reduction = frag.reduction(state, rows, slot_fit, tasks, cpu_milli=pod.cpu_milli, gpus=pod.gpus,
                               share_milli=pod.gpu_milli)
    x = reduction[np.arange(len(rows)), np.maximum(slots, 0)] if pod.is_share else reduction.max(1)
    saving = x / tasks.total
    sigmoid = 1.0 / (1.0 + np.exp(-saving / 1000.0))
    return Breakdown(with_rounding((Term("sigmoid(x / 1000)", 100.0, sigmoid),), scores, "integer bin (floor)"),
                     inputs=(Term("x: fragmentation saved, ΔF/|M| (milli-GPU)", 1.0, saving),))


def score_rows(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
               tasks: frag.TaskMatrix) -> tuple[np.ndarray, np.ndarray]:
    """(score [B], best slot [B] or -1) for fitting rows, uncached."""
    reduction = frag.reduction(state, rows, slot_fit, tasks, cpu_milli=pod.cpu_milli, gpus=pod.gpus,
                               share_milli=pod.gpu_milli)
    if not pod.is_share:
        return _sigmoid_score(reduction.max(1), tasks), np.full(len(rows), -1)
    per_slot = np.where(slot_fit, _sigmoid_score(reduction, tasks), -1.0)
    best = per_slot.argmax(1)  # the first slot with the best score, as the artifact picks
    return per_slot[np.arange(len(rows)), best], np.where(slot_fit.any(1), best, -1)


def _sigmoid_score(reduction: np.ndarray, tasks: frag.TaskMatrix) -> np.ndarray:
    x = reduction / tasks.total / 1000.0
    return np.floor((1.0 / (1.0 + np.exp(-x))) * 100.0)  # the artifact's int64(sigmoid(x) * 100)


POLICY = Policy("fgd", "fragmentation gradient descent: the node whose fragmentation grows least", score, pick,
                explain)
