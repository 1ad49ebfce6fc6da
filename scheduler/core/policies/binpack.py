"""binpack: fill the fullest node first, and within it the fullest GPU.

score = 10^6 · gpu_used_after / gpu_capacity          (the node, most allocated first)
      + 10^3 · (1 − free_left_on_tightest_gpu / 1000)  (shares: the snuggest GPU)
      +        cpu_used_after / cpu_capacity           (tie-break on CPU)
For CPU-only pods the GPU terms are 0, so CPU packing decides.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import (
    Breakdown,
    Policy,
    PolicyContext,
    Term,
    pick_best_fit,
    usable_capacity,
    usable_free,
)
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState


def used_fraction_after(state: ClusterState, pod: PodRequest, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cap = usable_capacity(state, rows)
    used = cap - usable_free(state, rows) + pod.total_milli
    gpu = np.divide(used, cap, out=np.zeros(len(rows)), where=cap > 0) if pod.wants_gpu else np.zeros(len(rows))
    cpu_cap = state.cpu_total[rows]
    cpu_used = cpu_cap - state.cpu_free[rows] + pod.cpu_milli
    cpu = np.divide(cpu_used, cpu_cap, out=np.zeros(len(rows)), where=cpu_cap > 0)
    return gpu, cpu


def tightest_leftover(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray) -> np.ndarray:
    """float [B]: for shares, free milli left on the tightest fitting GPU after placing; else 0."""
    if not pod.is_share:
        return np.zeros(len(rows))
    left = np.where(slot_fit, state.free_milli[rows] - pod.gpu_milli, 10**6)
    return left.min(1).astype(np.float64)


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    gpu, cpu = used_fraction_after(state, pod, rows)
    snug = 1.0 - tightest_leftover(state, pod, rows, slot_fit) / 1000.0
    return 1e6 * gpu + 1e3 * np.where(pod.is_share, snug, 0.0) + cpu


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    gpu, cpu = used_fraction_after(state, pod, rows)
    snug = 1.0 - tightest_leftover(state, pod, rows, slot_fit) / 1000.0
    return Breakdown((
        Term("GPU used after (share of the node's)", 1e6, gpu),
        Term("share: snug fit on the tightest GPU", 1e3, np.where(pod.is_share, snug, 0.0) * np.ones(len(rows))),
        Term("CPU used after (share of the node's)", 1.0, cpu),
    ))


POLICY = Policy("binpack", "fill the fullest nodes and GPUs first", score, pick_best_fit, explain, span=1e6)
