"""random: one fitting node drawn uniformly at random (the FGD paper's Random-fit baseline).

score = 100 for one of the fitting rows, 0 for the others: the artifact's RandomScore plugin, which
draws one node in PreScore and gives it the maximum score, so the draw alone decides.
GPU inside the node: a share lands on a GPU drawn uniformly among those with room; whole GPUs
take the lowest free indices (NVLink-connected where the node reports links).

The draw is a pure function of (the context's seed, the pod's UID, the node row, the slot): each
candidate gets a 64-bit hash and the largest wins, which is a uniform choice among the candidates,
independent from pod to pod. So scoring twice gives the same answer (the extender may score a
pod more than once), and the same seed places the same way in-process and over HTTP.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term, pick_best_fit
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

CHOSEN_SCORE = 100.0
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext) -> np.ndarray:
    out = np.zeros(len(rows))
    if len(rows):
        out[np.argmax(_draws(ctx, pod, np.asarray(rows, np.uint64)))] = CHOSEN_SCORE
    return out


def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray, ctx: PolicyContext
            ) -> Breakdown:
    chosen = score(state, pod, rows, slot_fit, ctx) / CHOSEN_SCORE
    return Breakdown((Term("drawn at random among the fitting nodes", CHOSEN_SCORE, chosen),))


def pick(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray, ctx: PolicyContext) -> tuple[int, ...]:
    if pod.is_share:
        candidates = np.flatnonzero(slot_fit)
        keys = np.full(len(candidates), row + 1, np.uint64) * _GOLDEN + candidates.astype(np.uint64)
        return (int(candidates[np.argmax(_draws(ctx, pod, keys))]),)
    return pick_best_fit(state, pod, row, slot_fit, ctx)


def _draws(ctx: PolicyContext, pod: PodRequest, keys: np.ndarray) -> np.ndarray:
    """A uniform 64-bit value per key, for this seed and pod (splitmix64 finaliser)."""
    salt = np.uint64(((ctx.seed & 0xFFFFFFFF) << 32 ^ _fnv1a(pod.uid)) & 0xFFFFFFFFFFFFFFFF)
    x = (keys + np.uint64(1)) * _GOLDEN ^ salt
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _fnv1a(text: str) -> int:
    """A stable 64-bit hash of a string (Python's own `hash` changes from process to process)."""
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


POLICY = Policy("random", "a fitting node drawn at random (FGD paper baseline)", score, pick, explain)
