"""What fgd-plus's score is computed from: the node-local saving x, the CPU slack σ, the model
pressure φ kept current with the books, the seeded node order and best-fit's tightness (formulas
in `fgd_plus`).

Each is memoised in the policy context: per workload M (`per_workload`), per node capacities
(`cpu_slack`), per books generation (`model_pressure`) or per node set and seed (`node_order`),
so a scheduling cycle pays for what changed since the last pod.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core import scarcity, stranding
from scheduler.core.policies.base import PolicyContext
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

T = TypeVar("T")


def node_saving(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                tasks: frag.TaskMatrix, *, cpu: float, demand: stranding.CpuDemand | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(x without the model term [B], its best slot [B] or -1): FGD's reduction per |M| minus cpu · ΔS."""
    per_slot = frag.reduction(state, rows, slot_fit, tasks, cpu_milli=pod.cpu_milli, gpus=pod.gpus,
                              share_milli=pod.gpu_milli) / tasks.total
    saving = per_slot.max(1)
    if cpu:
        demand = stranding.cpu_demand(tasks) if demand is None else demand
        free = frag.free_share(state, rows).sum(1)
        cpu_free = state.cpu_free[rows]
        saving = saving - cpu * stranding.added(free, cpu_free, pod.total_milli, pod.cpu_milli, demand)
    if pod.is_share:
        # The largest saving, then the tightest GPU, then the lowest index.
        best = per_slot == per_slot.max(1, keepdims=True)
        slot = np.where(best, state.free_milli[rows], np.iinfo(np.int64).max).argmin(1)
    else:
        slot = np.where(slot_fit.any(1), slot_fit.argmax(1), -1)
    return saving, slot


def per_workload(ctx: PolicyContext, key: str, tasks: frag.TaskMatrix, derive: Callable[[frag.TaskMatrix], T]) -> T:
    """`derive(tasks)`, computed once per workload M (a new M is a new TaskMatrix)."""
    cached = ctx.memo.get(key)
    if cached is None or cached[0] is not tasks:
        cached = (tasks, derive(tasks))
        ctx.memo[key] = cached
    return cached[1]


def cpu_slack(state: ClusterState, ctx: PolicyContext, tasks: frag.TaskMatrix) -> float:
    """σ (`stranding.cluster_slack`) for this M, recomputed only when a node's capacity changes
    (`capacity_version`): grants leave it alone, and summing every node's CPU per pod cost the
    simulator 4 % of a run."""
    cached = ctx.memo.get("cpu-slack")
    if cached is None or cached[0] is not state or cached[1] != state.capacity_version or cached[2] is not tasks:
        demand = per_workload(ctx, "cpu-demand", tasks, stranding.cpu_demand)
        cached = (state, state.capacity_version, tasks, stranding.cluster_slack(state, demand))
        ctx.memo["cpu-slack"] = cached
    return cached[3]


def model_pressure(state: ClusterState, ctx: PolicyContext, tasks: frag.TaskMatrix) -> np.ndarray:
    """φ per model id, recomputed when the books change (`generation`), shared by the variants."""
    cached = ctx.memo.get("model-pressure")
    if cached is None or cached[0] is not state or cached[1] != state.generation or cached[2] is not tasks:
        free = ctx.memo.setdefault("free-by-model", scarcity.FreeByModel()).of(state)
        cached = (state, state.generation, tasks, scarcity.model_pressure(free, tasks))
        ctx.memo["model-pressure"] = cached
    return cached[3]


def tightness(state: ClusterState, pod: PodRequest, rows: np.ndarray) -> np.ndarray:
    """0..1, higher where the node is left with less free CPU and GPU (bestfit's measure, unbinned)."""
    cpu_left = (state.cpu_free[rows] - pod.cpu_milli) / 128_000
    gpu_left = (frag.free_share(state, rows).sum(1) - pod.total_milli) / 8_000
    return np.clip(1.0 - 0.5 * (cpu_left + gpu_left), 0.0, 1.0)


def node_order(state: ClusterState, ctx: PolicyContext) -> np.ndarray:
    """float64 [rows] in [0, 1): a pseudo-random rank per node name, fixed for a seed."""
    key = (state.structure_version, state.rows, ctx.seed)
    cached = ctx.memo.get("node-order")
    if cached is None or cached[0] != key:
        salt = (ctx.seed & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        ranks = [int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8, key=salt).digest(), "little")
                 for name in state.names]
        order = np.zeros(state.rows)
        order[:len(ranks)] = np.array(ranks, np.float64) / 2.0**64
        cached = (key, order)
        ctx.memo["node-order"] = cached
    return cached[1]
