"""clustering: keep pods of one GPU class together (the FGD paper's GpuClustering baseline).

A pod's class is its GPU shape: a share, or k whole GPUs (`ClusterState.pod_classes`); CPU-only
pods score 0 everywhere. With L the node's free GPU milli (usable GPUs):

    fill  = ⌊25 · (8000 − L) / 8000⌋                (fuller nodes first within a band)
    score = fill + 75   node hosts only the pod's class
          = fill + 50   node hosts the pod's class and others
          = fill + 25   node hosts no GPU pod at all
          = fill        node hosts other classes only

Integer arithmetic exactly as the artifact's plugin (Go division truncates toward zero).
GPU inside the node: best-fit.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term, pick_best_fit, usable_free
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

MAX_GPU_MILLI = 8_000
BAND = 25


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    if not pod.wants_gpu:
        return np.zeros(len(rows))
    fill, band = fill_and_band(state, pod, rows)
    return (fill + band).astype(np.float64)


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    if not pod.wants_gpu:
        return Breakdown((Term("a CPU-only pod: no GPU class", 0.0, np.zeros(len(rows))),))
    fill, band = fill_and_band(state, pod, rows)
    return Breakdown((
        Term("fuller node: ⌊25·(8000 − free GPU milli)/8000⌋", 1.0, fill.astype(np.float64)),
        Term("class band: 3 only its class, 2 mixed, 1 no GPU pod, 0 other classes", float(BAND),
             (band // BAND).astype(np.float64)),
    ))


def fill_and_band(state: ClusterState, pod: PodRequest, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 [B] each: the fill within a band, and the band (0, 25, 50 or 75) of the node's classes."""
    numerator = BAND * (MAX_GPU_MILLI - usable_free(state, rows))
    fill = np.sign(numerator) * (np.abs(numerator) // MAX_GPU_MILLI)
    census = state.pod_classes[rows]
    classes_here = (census > 0).sum(1)
    cls = 0 if pod.is_share else pod.gpus
    mine = census[:, cls] > 0 if cls < census.shape[1] else np.zeros(len(rows), bool)
    band = np.where(mine, np.where(classes_here == 1, 3 * BAND, 2 * BAND), np.where(classes_here == 0, BAND, 0))
    return fill, band


POLICY = Policy("clustering", "pods of one GPU shape together, then fuller nodes (FGD paper baseline)",
                score, pick_best_fit, explain)
