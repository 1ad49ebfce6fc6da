"""The policy interface and the context every policy receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scheduler.core import gpu_pick
from scheduler.core.policies import gpu_less
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload

Score = Callable[[ClusterState, PodRequest, np.ndarray, np.ndarray, "PolicyContext"], np.ndarray]
Pick = Callable[[ClusterState, PodRequest, int, np.ndarray, "PolicyContext"], tuple[int, ...]]


@dataclass
class PolicyContext:
    """What a policy may use besides the state and the pod. Handed in; never global.

    `memo` is a cache the policy may keep between calls (owned by one engine or simulator run);
    results must be identical with an empty memo. `rng` is seeded by the caller.
    """

    workload: Workload | None = None
    memo: dict = field(default_factory=dict)
    rng: np.random.Generator | None = None
    seed: int = 0
    """The caller's seed, for policies whose draws must be a pure function of (seed, pod, node)."""


@dataclass(frozen=True)
class Policy:
    name: str
    summary: str
    score: Score
    """The policy's own formula (its docstring), higher is better."""
    pick: Pick
    span: float = 100.0
    """How far apart two scores are when the policy prefers one node as strongly as it ever does: the
    difference worth the extender's whole 0..10 range (`wire.scale_array`). The kube-scheduler-style
    policies score 0..100; binpack and spread weigh utilisation by 10^6."""

    def node_scores(self, state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                    ctx: PolicyContext) -> np.ndarray:
        """What callers rank nodes by: `score`, and a GPU-less pod's preference for GPU-less nodes."""
        return gpu_less.prefer_gpu_less_nodes(state, pod, rows, self.score(state, pod, rows, slot_fit, ctx),
                                              self.span)


def pick_best_fit(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray,
                  ctx: PolicyContext) -> tuple[int, ...]:
    """Shares on the tightest GPU; whole GPUs NVLink-connected (or lowest indices)."""
    if pod.is_share:
        return (gpu_pick.share_best_fit(state, row, slot_fit),)
    if pod.gpus:
        return gpu_pick.whole_gpus(state, row, slot_fit, pod.gpus)
    return ()


def pick_worst_fit(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray,
                   ctx: PolicyContext) -> tuple[int, ...]:
    """Shares on the emptiest GPU; whole GPUs as in best-fit."""
    if pod.is_share:
        return (gpu_pick.share_worst_fit(state, row, slot_fit),)
    return pick_best_fit(state, pod, row, slot_fit, ctx)


def usable_free(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """int64 [B]: free GPU milli on usable GPUs."""
    return np.where(state.usable[rows], state.free_milli[rows], 0).sum(1)


def usable_capacity(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """int64 [B]: GPU milli capacity of usable GPUs."""
    return state.usable[rows].sum(1) * 1000
