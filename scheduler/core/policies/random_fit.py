"""random: one fitting node drawn uniformly at random (the FGD paper's Random-fit baseline).

score = 100 for one of the fitting rows, drawn uniformly with the context's seeded generator,
0 for the others: the artifact's RandomScore plugin, which draws one node in PreScore and gives
it the maximum score, so the draw alone decides.
GPU inside the node: a share lands on a GPU drawn uniformly among those with room; whole GPUs
take the lowest free indices (NVLink-connected where the node reports links).
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import Policy, PolicyContext, pick_best_fit
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

CHOSEN_SCORE = 100.0


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    out = np.zeros(len(rows))
    if len(rows):
        out[_rng(ctx).integers(len(rows))] = CHOSEN_SCORE
    return out


def pick(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray, ctx: PolicyContext) -> tuple[int, ...]:
    if pod.is_share:
        candidates = np.flatnonzero(slot_fit)
        return (int(candidates[_rng(ctx).integers(len(candidates))]),)
    return pick_best_fit(state, pod, row, slot_fit, ctx)


def _rng(ctx: PolicyContext) -> np.random.Generator:
    if ctx.rng is None:  # a caller without a seed still gets a reproducible draw
        ctx.rng = np.random.default_rng(0)
    return ctx.rng


POLICY = Policy("random", "a fitting node drawn at random (FGD paper baseline)", score, pick)
