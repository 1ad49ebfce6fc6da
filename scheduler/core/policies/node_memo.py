"""A per-node cache for fragmentation-style policies: one value and one GPU slot per node row, per
pod shape, valid while the node's version is unchanged. Nothing here knows what the value means.

What a cached value may depend on: the pod's shape (`shape_key`), the workload M (a new M starts
a new cache), the state's structure, and the node's own row (layout, free CPU, free shares, which
slots fit). Never on other nodes or on anything global: a cached value outlives changes elsewhere.
Rows alike in all of these are computed once per call and the answer broadcast
(`scheduler.core.grouping`), which is most of a fresh cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core.grouping import group_rows
from scheduler.core.policies.base import PolicyContext
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload

MEMO_LIMIT = 512
"""Pod shapes cached per policy (a trace has ~100-450; each entry is three arrays over nodes)."""
BYTES_PER_ROW = 17
"""An entry's cost per node row: version (int64), value (float64), slot (int8: a node has at most
64 GPU slots, and -1 for none; handed out as int64)."""
MEMO_BYTES = 48 << 20
"""...and no more entries than fit this many bytes: at 20,000 nodes 148 shapes, not 512; at 50,000
nodes 59 (the RSS target of 400 MiB at 50,000 nodes x 8 GPUs leaves the cache ~50 MB).
The least recently used shape goes first: a cluster's few common shapes stay warm."""

GROUP_ABOVE = 64
"""Stale rows up to this many are computed as they are: grouping them costs more than it saves
(in steady state half the calls find one or two changed nodes)."""

Compute = Callable[[ClusterState, PodRequest, np.ndarray, np.ndarray, frag.TaskMatrix], tuple[np.ndarray, np.ndarray]]
"""(state, pod, rows, slot_fit, tasks) -> (value [B], slot [B] or -1), for fitting rows."""


@dataclass
class _Entry:
    workload: Workload
    structure: int
    version: np.ndarray
    value: np.ndarray
    slot: np.ndarray


def shape_key(pod: PodRequest) -> tuple:
    """What a fitting node's value may depend on: memory only filters, it never changes a value."""
    return (pod.cpu_milli, pod.gpus, pod.gpu_milli, pod.gpu_memory_mib, pod.models, pod.sharing)


def workload_of(pod: PodRequest, ctx: PolicyContext) -> Workload:
    """M from the context; before anything is seen, M is the pod itself."""
    return ctx.workload or Workload.of_pods([pod])


def tasks_of(state: ClusterState, workload: Workload, ctx: PolicyContext) -> frag.TaskMatrix:
    """M as arrays for this state's models, built once per (M, structure) and shared by every policy."""
    cache = ctx.memo.setdefault("fgd-tasks", {})
    key = (id(workload), state.structure_version)
    if key not in cache or cache[key][0] is not workload:
        cache.clear()
        cache[key] = (workload, frag.task_matrix(state, workload))
    return cache[key][1]


def memo_limit(rows: int) -> int:
    """Shapes one policy's memo keeps for a state of `rows` rows."""
    return max(1, min(MEMO_LIMIT, MEMO_BYTES // (BYTES_PER_ROW * max(rows, 1))))


def cached(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext,
           *, namespace: str, compute: Compute) -> tuple[np.ndarray, np.ndarray]:
    """(value [B], slot [B]) for fitting `rows`, from the memo where the node is unchanged."""
    workload = workload_of(pod, ctx)
    memos = ctx.memo.setdefault(namespace, {})
    key = shape_key(pod)
    entry = memos.pop(key, None)  # re-inserted below: most recently used last
    if (entry is None or entry.workload is not workload or entry.structure != state.structure_version
            or len(entry.version) != state.rows):
        while len(memos) >= memo_limit(state.rows):
            memos.pop(next(iter(memos)))  # the least recently used shape
        entry = _Entry(workload, state.structure_version, np.full(state.rows, -1, np.int64),
                       np.zeros(state.rows), np.full(state.rows, -1, np.int8))
    memos[key] = entry
    # take(), not fancy indexing: several times cheaper over the ~1,000 fitting rows of each pod
    idx = (entry.version.take(rows) != state.version.take(rows)).nonzero()[0]
    if len(idx):
        sub = rows.take(idx)
        fits = slot_fit.take(idx, 0)
        if len(sub) <= GROUP_ABOVE:
            first = inverse = np.arange(len(sub))
        else:
            # Nodes alike in layout, free CPU, free shares and candidate GPUs get alike values: compute once each.
            alike = np.column_stack([state.layout[sub], state.cpu_free[sub], frag.free_share(state, sub),
                                     fits.astype(np.int64) @ (1 << np.arange(fits.shape[1], dtype=np.int64))])
            first, inverse = group_rows(alike)
        value, slot = compute(state, pod, sub[first], fits[first], tasks_of(state, workload, ctx))
        entry.value[sub], entry.slot[sub], entry.version[sub] = value[inverse], slot[inverse], state.version[sub]
    return entry.value.take(rows), entry.slot.take(rows).astype(np.int64)
