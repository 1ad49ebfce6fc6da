"""bestfit: the node whose free (CPU, GPU) vector is left smallest, as in the FGD paper's baseline.

score = ⌊100 · (1 − Σ_i w_i (free_i − req_i) / max_i)⌋,  i ∈ {CPU, GPU}, w = (0.5, 0.5),
max = (128 cores, 8 GPUs): the artifact's BestFit plugin, integer like a kube-scheduler score
(so nodes within one point tie, as they do there). GPU inside the node: best-fit.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import (
    Breakdown,
    Policy,
    PolicyContext,
    Term,
    constant,
    pick_best_fit,
    usable_free,
    with_rounding,
)
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

MAX_CPU_MILLI = 128_000
MAX_GPU_MILLI = 8_000


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    cpu_left, gpu_left = left_after(state, pod, rows)
    return np.trunc(100.0 * (1.0 - (0.5 * cpu_left + 0.5 * gpu_left)))


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    cpu_left, gpu_left = left_after(state, pod, rows)
    return Breakdown(with_rounding((
        constant("a full node", 100.0, len(rows)),
        Term("CPU left after / 128 cores", -50.0, cpu_left),
        Term("GPU left after / 8 GPUs", -50.0, gpu_left),
    ), score(state, pod, rows, slot_fit, ctx), "truncated to an integer"))


def left_after(state: ClusterState, pod: PodRequest, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CPU, GPU) free after placing the pod, as fractions of the largest node (128 cores, 8 GPUs)."""
    cpu_left = (state.cpu_free[rows] - pod.cpu_milli) / MAX_CPU_MILLI
    gpu_left = (usable_free(state, rows) - pod.total_milli) / MAX_GPU_MILLI
    return cpu_left, gpu_left


POLICY = Policy("bestfit", "the node left with the least free CPU and GPU (FGD paper baseline)", score, pick_best_fit,
                explain)
