"""dotprod: the node whose free (CPU, GPU) vector is least aligned with the pod's request
(Tetris-style alignment, the FGD paper's DotProd baseline, "merge" dimensions, "max" norm).

score = ⌊100 · (1 − (c_free/C · c_req/C + g_free/G · g_req/G) / 2)⌋,  C = 128 cores, G = 8 GPUs,
with c the CPU milli and g the GPU milli summed over the node's usable GPUs (free) or over the
pod's GPUs (request). The artifact evaluates exactly this float expression and truncates it to a
kube-scheduler integer score, so nodes within one point tie. GPU inside the node: best-fit.
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

MAX_CPU_MILLI = 128_000.0
MAX_GPU_MILLI = 8_000.0


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    # Same operations in the same order as the artifact, so the truncation lands identically.
    cpu, gpu = products(state, pod, rows)
    return np.trunc(100.0 * (1.0 - (cpu + gpu) / 2.0))


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    cpu, gpu = products(state, pod, rows)
    return Breakdown(with_rounding((
        constant("no alignment", 100.0, len(rows)),
        Term("free CPU · asked CPU (per 128 cores)", -50.0, cpu),
        Term("free GPU · asked GPU (per 8 GPUs)", -50.0, gpu),
    ), score(state, pod, rows, slot_fit, ctx), "truncated to an integer"))


def products(state: ClusterState, pod: PodRequest, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CPU, GPU) terms of the dot product of free and asked, each normalised by the largest node."""
    cpu = (state.cpu_free[rows] / MAX_CPU_MILLI) * (pod.cpu_milli / MAX_CPU_MILLI)
    gpu = (usable_free(state, rows) / MAX_GPU_MILLI) * (pod.total_milli / MAX_GPU_MILLI)
    return cpu, gpu


POLICY = Policy("dotprod", "the node least aligned with the request: dot product of free and asked (FGD paper baseline)",
                score, pick_best_fit, explain)
