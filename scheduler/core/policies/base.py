"""The policy interface and the context every policy receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scheduler.core import gpu_pick
from scheduler.core.policies import gpu_less
from scheduler.core.rehearsal_board import Rehearsals
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload

Score = Callable[[ClusterState, PodRequest, np.ndarray, np.ndarray, "PolicyContext"], np.ndarray]
Pick = Callable[[ClusterState, PodRequest, int, np.ndarray, "PolicyContext"], tuple[int, ...]]
Explain = Callable[[ClusterState, PodRequest, np.ndarray, np.ndarray, "PolicyContext"], "Breakdown"]


@dataclass(frozen=True)
class Term:
    """One named part of a score: `weight · values`, one value per scored row."""

    name: str
    weight: float
    values: np.ndarray
    rounding: bool = False
    """The remainder an integer score drops (|value| < 1): what the other terms add up to, minus
    the integer the policy returns. Only policies that round have one."""


@dataclass(frozen=True)
class Breakdown:
    """A score split into its terms: `weighted_sum(terms)` is the policy's score, bit for bit.

    `inputs` are what a non-linear term is computed from (FGD's saving x inside its sigmoid, split
    into its parts): shown to explain that term, never summed into the score.
    """

    terms: tuple[Term, ...]
    inputs: tuple[Term, ...] = ()


def weighted_sum(terms: tuple[Term, ...], count: int) -> np.ndarray:
    """Σ weight · values, left to right from 0, in float64: the order each policy's score adds in."""
    total = np.zeros(count)
    for term in terms:
        total = total + term.weight * term.values
    return total


def with_rounding(terms: tuple[Term, ...], score: np.ndarray, what: str) -> tuple[Term, ...]:
    """`terms` of an unrounded score, plus the remainder the policy's rounding drops."""
    return (*terms, Term(what, 1.0, score - weighted_sum(terms, len(score)), rounding=True))


def constant(name: str, weight: float, count: int) -> Term:
    """A term every node gets alike (a base the other terms subtract from)."""
    return Term(name, weight, np.ones(count))


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
    rehearsals: Rehearsals | None = None
    """The server's board of rehearsals played off the scheduling path (`rehearsal_board`); None:
    a policy that needs one plays it where it scores."""


@dataclass(frozen=True)
class Policy:
    name: str
    summary: str
    score: Score
    """The policy's own formula (its docstring), higher is better."""
    pick: Pick
    explain: Explain
    """The same score split into named, weighted terms (`Breakdown`), for `gpusched explain`."""
    span: float = 100.0
    """How far apart two scores are when the policy prefers one node as strongly as it ever does: the
    difference worth the extender's whole 0..10 range (`wire.scale_array`). The kube-scheduler-style
    policies score 0..100; binpack and spread weigh utilisation by 10^6."""

    def node_scores(self, state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                    ctx: PolicyContext) -> np.ndarray:
        """What callers rank nodes by: `score`, and a GPU-less pod's preference for GPU-less nodes."""
        return gpu_less.prefer_gpu_less_nodes(state, pod, rows, self.score(state, pod, rows, slot_fit, ctx),
                                              self.span)

    def node_terms(self, state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                   ctx: PolicyContext) -> Breakdown:
        """`node_scores` split into terms: `explain`, and the GPU-less preference where it applies."""
        breakdown = self.explain(state, pod, rows, slot_fit, ctx)
        if pod.wants_gpu:
            return breakdown
        preference = Term("GPU-less pod on a GPU-less node", gpu_less.PREFERENCE * self.span, gpu_less.gpu_less(state, rows))
        return Breakdown((*breakdown.terms, preference), breakdown.inputs)


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
