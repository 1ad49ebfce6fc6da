"""spread: the emptiest node first, and within it the emptiest GPU (the mirror of binpack).

score = 10^6 · (1 − gpu_used_after / gpu_capacity) + 10^3 · (largest free left on a fitting GPU / 1000)
      + (1 − cpu_used_after / cpu_capacity)
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term, pick_worst_fit
from scheduler.core.policies.binpack import used_fraction_after
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    gpu, cpu = used_fraction_after(state, pod, rows)
    return 1e6 * (1.0 - gpu) + 1e3 * roomiest(state, pod, rows, slot_fit) + (1.0 - cpu)


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    gpu, cpu = used_fraction_after(state, pod, rows)
    return Breakdown((
        Term("GPU free after (share of the node's)", 1e6, 1.0 - gpu),
        Term("share: GPUs left on the roomiest GPU", 1e3, roomiest(state, pod, rows, slot_fit) * np.ones(len(rows))),
        Term("CPU free after (share of the node's)", 1.0, 1.0 - cpu),
    ))


def roomiest(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray) -> np.ndarray | float:
    """For a share, the GPU left free on its roomiest fitting GPU (in GPUs); 0 otherwise."""
    if not pod.is_share:
        return 0.0
    return np.where(slot_fit, state.free_milli[rows] - pod.gpu_milli, -1).max(1) / 1000.0


POLICY = Policy("spread", "the emptiest nodes and GPUs first (fewest pods per GPU)", score, pick_worst_fit, explain,
                span=1e6)
