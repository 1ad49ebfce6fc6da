"""GPU that a node's free CPU cannot serve: stranded GPU, measured against the workload M.

A GPU pod needs CPU too, so a node whose CPU is nearly gone cannot use its free GPUs however whole
they are. FGD sees this only as a cliff (a task type whose CPU no longer fits counts every free
GPU as a fragment), so it is indifferent to where a CPU-only pod goes until that cliff is near, and
CPU-only pods drift onto GPU-dense nodes and eat the CPU their GPUs will need.

This module measures the slope instead. A GPU task type m asks ρ_m = cpu_m / gpu_m CPU milli per
milli-GPU. Were node n's free GPU U_n filled only by pods of type m, its free CPU C_n would run
out after C_n / ρ_m milli-GPU, stranding the rest. Averaged over M, by each type's share of the
GPU demand q_m = w_m·gpu_m / Σ w·gpu:

    S_n = Σ_m q_m · max(0, U_n − C_n / ρ_m)            (milli-GPU)

S is 0 on a node with CPU to spare for every type, grows as CPU-only pods (or CPU-hungry GPU pods)
take the CPU its GPUs need, and equals U_n once C_n is gone. Pure function of (U, C) per node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.core.fragmentation import TaskMatrix
from scheduler.core.state import ClusterState


@dataclass(frozen=True)
class CpuDemand:
    """The GPU task types of M as CPU-per-GPU ratios and their shares of the GPU demand."""

    ratio: np.ndarray
    """float64 [K]: CPU milli per milli-GPU, distinct values ascending."""
    weight: np.ndarray
    """float64 [K]: share of M's GPU demand at that ratio (sums to 1, or empty)."""

    def __post_init__(self) -> None:
        # ratio 0 (a type that asks no CPU) never limits; dividing by 1 there instead of 0 spares
        # np.errstate, a context manager per call, on the scoring path
        object.__setattr__(self, "_limits", self.ratio > 0)
        object.__setattr__(self, "_divisor", np.where(self.ratio > 0, self.ratio, 1.0))

    def servable(self, free_cpu: np.ndarray) -> np.ndarray:
        """float64 [..., K]: milli-GPU that free_cpu [...] can serve at each ratio (inf at ratio 0)."""
        return np.where(self._limits, np.asarray(free_cpu, np.float64)[..., None] / self._divisor, np.inf)


def cpu_demand(tasks: TaskMatrix) -> CpuDemand:
    gpu = tasks.wants_gpu
    milli = (tasks.milli * tasks.need)[gpu].astype(np.float64)
    demand = tasks.weights[gpu] * milli
    if not len(demand) or demand.sum() <= 0:
        return CpuDemand(np.zeros(0), np.zeros(0))
    ratio, inverse = np.unique(tasks.cpu[gpu] / milli, return_inverse=True)
    weight = np.bincount(inverse.reshape(-1), weights=demand, minlength=len(ratio))
    return CpuDemand(ratio, weight / weight.sum())


def stranded(free_milli: np.ndarray, free_cpu: np.ndarray, demand: CpuDemand) -> np.ndarray:
    """float64, the shape of `free_milli`: S for each (U, C) pair (see module doc)."""
    u = np.asarray(free_milli, np.float64)[..., None]
    return np.maximum(0.0, u - demand.servable(free_cpu)) @ demand.weight


def added(free_milli: np.ndarray, free_cpu: np.ndarray, milli: int, cpu: int, demand: CpuDemand) -> np.ndarray:
    """float64 [B]: ΔS, what taking `milli` GPU and `cpu` CPU from each node adds to its stranded GPU:
    `stranded` after minus before, both sides in one pass (the scoring path calls this per pod)."""
    after, before = stranded(free_milli - np.array(((milli,), (0,))), free_cpu - np.array(((cpu,), (0,))), demand)
    return after - before


def cpu_slack(cpu_milli: float, gpu_milli: float, demand: CpuDemand) -> float:
    """σ = C / (G · ρ̄): the cluster's CPU C over what its G milli-GPU would take if M's GPU pods
    filled them, ρ̄ = Σ_m q_m ρ_m. inf when M has no GPU demand or the cluster no GPU."""
    need = gpu_milli * float(demand.ratio @ demand.weight) if len(demand.ratio) else 0.0
    return cpu_milli / need if need > 0 else float("inf")


def cluster_slack(state: ClusterState, demand: CpuDemand) -> float:
    """`cpu_slack` of the nodes that have GPUs (a CPU-only node's CPU serves no GPU)."""
    gpus = state.gpu_count[:state.size]
    return cpu_slack(float(state.cpu_total[:state.size][gpus > 0].sum()), 1000.0 * float(gpus.sum()), demand)


SLACK_FULL = 1.75
SLACK_NONE = 2.0


def relevance(slack: float) -> float:
    """How much the stranding term should count, from σ (`cpu_slack`), in [0, 1]:

        0                        σ < 1        too little CPU even for the GPU pods: GPUs are stranded
                                              whatever the placement, the term only moves where
        1                        1 ≤ σ ≤ 1.75 CPU enough, but CPU-only and CPU-hungry pods can eat it
        (2 − σ) / 0.25           1.75 < σ < 2 (no cliff)
        0                        σ ≥ 2        CPU to spare: a node runs out only in corners, and
                                              pulling pods away from them costs more fragmentation
                                              than it saves
    """
    if slack < 1.0:
        return 0.0
    return float(min(1.0, max(0.0, (SLACK_NONE - slack) / (SLACK_NONE - SLACK_FULL))))
