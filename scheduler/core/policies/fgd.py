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

from dataclasses import dataclass

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core import gpu_pick
from scheduler.core.grouping import group_rows
from scheduler.core.policies.base import Policy, PolicyContext
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload

_MEMO_LIMIT = 128


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    scores, _ = _cached(state, pod, rows, slot_fit, ctx)
    return scores


def pick(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray, ctx: PolicyContext) -> tuple[int, ...]:
    if pod.is_share:
        _, slots = _cached(state, pod, np.array([row]), slot_fit[None, :], ctx)
        return (int(slots[0]),)
    if pod.gpus:
        return gpu_pick.whole_gpus(state, row, slot_fit, pod.gpus)
    return ()


def score_rows(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
               tasks: frag.TaskMatrix) -> tuple[np.ndarray, np.ndarray]:
    """(score [B], best slot [B] or -1) for fitting rows, uncached."""
    r = frag.free_share(state, rows)
    ok = frag.hostable(state, rows, tasks)
    p = frag.parts(r, ok, tasks)
    u = r.sum(1)
    cpu_after = state.cpu_free[rows] - pod.cpu_milli
    before = frag.combine(u, state.cpu_free[rows], p.count, p.fit_sum, tasks)
    if not pod.is_share:
        take = slot_fit & (np.cumsum(slot_fit, axis=1) <= pod.gpus)
        r_after = np.where(take, 0, r)
        pa = frag.parts(r_after, ok, tasks)
        after = frag.combine(r_after.sum(1), cpu_after, pa.count, pa.fit_sum, tasks)
        return _sigmoid_score(before - after, tasks), np.full(len(rows), -1)
    # A share on slot g changes only slot g: patch the aggregates instead of recomputing them.
    s = pod.gpu_milli
    r_new = (r - s)[:, :, None]
    fits_new = ok & (r_new >= np.maximum(tasks.milli, 1)[None, None, :])
    fits_old = p.fits
    count = p.count[:, None, :] - fits_old + fits_new
    fit_sum = p.fit_sum[:, None, :] - r[:, :, None] * fits_old + r_new * fits_new
    after = frag.combine(np.broadcast_to((u - s)[:, None], r.shape), np.broadcast_to(cpu_after[:, None], r.shape),
                         count, fit_sum, tasks)
    per_slot = np.where(slot_fit, _sigmoid_score(before[:, None] - after, tasks), -1.0)
    best = per_slot.argmax(1)  # the first slot with the best score, as the artifact picks
    return per_slot[np.arange(len(rows)), best], np.where(slot_fit.any(1), best, -1)


def _sigmoid_score(reduction: np.ndarray, tasks: frag.TaskMatrix) -> np.ndarray:
    x = reduction / tasks.total / 1000.0
    return np.floor((1.0 / (1.0 + np.exp(-x))) * 100.0)  # the artifact's int64(sigmoid(x) * 100)


@dataclass
class _Memo:
    workload: Workload
    structure: int
    tasks: frag.TaskMatrix
    version: np.ndarray
    score: np.ndarray
    slot: np.ndarray


def _cached(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
            ctx: PolicyContext) -> tuple[np.ndarray, np.ndarray]:
    workload = ctx.workload or Workload.of_pods([pod])
    memos = ctx.memo.setdefault("fgd", {})
    # What the score depends on: pod memory only filters, it never changes a fitting node's score.
    key = (pod.cpu_milli, pod.gpus, pod.gpu_milli, pod.gpu_memory_mib, pod.models, pod.sharing)
    memo = memos.get(key)
    if (memo is None or memo.workload is not workload or memo.structure != state.structure_version
            or len(memo.version) != state.rows):
        tasks = _tasks(state, workload, ctx)
        if len(memos) >= _MEMO_LIMIT:
            memos.pop(next(iter(memos)))
        memo = _Memo(workload, state.structure_version, tasks, np.full(state.rows, -1, np.int64),
                     np.zeros(state.rows), np.full(state.rows, -1, np.int64))
        memos[key] = memo
    stale = memo.version[rows] != state.version[rows]
    if stale.any():
        idx = np.flatnonzero(stale)
        sub = rows[idx]
        fits = slot_fit[idx]
        # Nodes alike in layout, free CPU, free shares and candidate GPUs score alike: compute once each.
        key = np.column_stack([state.layout[sub], state.cpu_free[sub], frag.free_share(state, sub),
                               fits.astype(np.int64) @ (1 << np.arange(fits.shape[1], dtype=np.int64))])
        first, inverse = group_rows(key)
        s, g = score_rows(state, pod, sub[first], fits[first], memo.tasks)
        memo.score[sub], memo.slot[sub], memo.version[sub] = s[inverse], g[inverse], state.version[sub]
    return memo.score[rows], memo.slot[rows]


def _tasks(state: ClusterState, workload: Workload, ctx: PolicyContext) -> frag.TaskMatrix:
    cache = ctx.memo.setdefault("fgd-tasks", {})
    key = (id(workload), state.structure_version)
    if key not in cache or cache[key][0] is not workload:
        cache.clear()
        cache[key] = (workload, frag.task_matrix(state, workload))
    return cache[key][1]


POLICY = Policy("fgd", "fragmentation gradient descent: the node whose fragmentation grows least", score, pick)
