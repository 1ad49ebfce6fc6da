"""GPU fragmentation of nodes against a workload (FGD, USENIX ATC'23, §2.2 of our protocol notes).

For node n with free share r_g on each GPU (0..1000 milli), free CPU c_n and U_n = Σ_g r_g, and a
task type m asking for CPU c_m and k_m GPUs with at least s_m free each:

    F_n(m) = U_n                                 if m asks no GPU, or cannot run on n
           = Σ_g r_g · [GPU g cannot host m]     otherwise (GPUs too small, or of a model/sharing
                                                 mode m may not use)
    F_n(M) = Σ_m w_m F_n(m)                      w_m = the count of type m in the workload

"Cannot run": fewer than k_m GPUs that can host m, or c_n < c_m. Weights are integer counts
and every F_n(m) an integer number of milli-GPUs, so F_n(M) is an exact integer held in float64
(exact below 2^53): results do not depend on batch size or summation order.

Unhealthy or MIG GPUs hold no usable capacity here (r = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.core.model import Sharing
from scheduler.core.state import ClusterState
from scheduler.core.workload import Workload


@dataclass(frozen=True)
class TaskMatrix:
    """The workload as arrays over its M types."""

    cpu: np.ndarray
    milli: np.ndarray
    need: np.ndarray
    wants_gpu: np.ndarray
    share: np.ndarray
    allowed: np.ndarray
    """bool [models + 1, M]: may type m use a GPU of model id i (the last row, absent slots: never)."""
    weights: np.ndarray
    total: float


def task_matrix(state: ClusterState, workload: Workload) -> TaskMatrix:
    types = workload.types
    allowed = np.zeros((len(state.models) + 1, len(types)), bool)
    for j, t in enumerate(types):
        for i, model in enumerate(state.models):
            allowed[i, j] = t.models.matches(model)
    return TaskMatrix(
        cpu=np.array([t.cpu_milli for t in types], np.int64),
        milli=np.array([t.gpu_milli for t in types], np.int64),
        need=np.array([t.gpus for t in types], np.int64),
        wants_gpu=np.array([t.gpus > 0 for t in types], bool),
        share=np.array([0 < t.gpu_milli < 1000 for t in types], bool),
        allowed=allowed,
        weights=workload.weights.astype(np.float64),
        total=float(workload.weights.sum()),
    )


def free_share(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """int64 [B, G]: free milli per slot, zero where the GPU is absent, unhealthy or MIG."""
    return np.where(state.usable[rows], state.free_milli[rows], 0)


def hostable(state: ClusterState, rows: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """bool [B, G, M]: may type m use slot g at all (model, sharing mode, health)."""
    ok = tasks.allowed[state.model_id[rows]] & state.usable[rows][:, :, None]
    exclusive = (state.sharing[rows] == Sharing.EXCLUSIVE)[:, :, None]
    return ok & ~(exclusive & tasks.share[None, None, :])


@dataclass(frozen=True)
class Parts:
    """Per (node, type) aggregates from which F follows: GPUs able to host m and their free sum."""

    fits: np.ndarray      # bool [B, G, M]
    count: np.ndarray     # int  [B, M]
    fit_sum: np.ndarray   # int  [B, M]


def parts(r: np.ndarray, ok: np.ndarray, tasks: TaskMatrix) -> Parts:
    fits = ok & (r[:, :, None] >= np.maximum(tasks.milli, 1)[None, None, :])
    return Parts(fits, fits.sum(1), np.einsum("bg,bgm->bm", r, fits.astype(np.int64)))


def combine(u: np.ndarray, cpu: np.ndarray, count: np.ndarray, fit_sum: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """F(M) from the aggregates; `u`/`cpu` broadcast against the leading axes of `count`."""
    can = (count >= tasks.need) & (cpu[..., None] >= tasks.cpu) & tasks.wants_gpu
    frag = np.where(can, u[..., None] - fit_sum, u[..., None]).astype(np.float64)
    return frag @ tasks.weights


def node_fragmentation(state: ClusterState, rows: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """float64 [B]: F_n(M) in weighted milli-GPU (divide by tasks.total for the paper's unit)."""
    r = free_share(state, rows)
    p = parts(r, hostable(state, rows, tasks), tasks)
    return combine(r.sum(1), state.cpu_free[rows], p.count, p.fit_sum, tasks)


def reduction(state: ClusterState, rows: np.ndarray, slot_fit: np.ndarray, tasks: TaskMatrix, *,
              cpu_milli: int, gpus: int, share_milli: int) -> np.ndarray:
    """float64 [B, G]: F_n(M) before − after placing the pod, per candidate slot (−inf where the
    slot does not fit). A share changes only the slot it lands on; whole GPUs take the first
    `gpus` fitting slots whatever the column (so every fitting column holds the same value); a
    CPU-only pod changes CPU only. Weighted milli-GPU, exact integers (see module doc).
    """
    r = free_share(state, rows)
    ok = hostable(state, rows, tasks)
    p = parts(r, ok, tasks)
    u = r.sum(1)
    cpu_after = state.cpu_free[rows] - cpu_milli
    before = combine(u, state.cpu_free[rows], p.count, p.fit_sum, tasks)
    if not share_milli:
        take = slot_fit & (np.cumsum(slot_fit, axis=1) <= gpus)
        r_after = np.where(take, 0, r)
        pa = parts(r_after, ok, tasks)
        after = combine(r_after.sum(1), cpu_after, pa.count, pa.fit_sum, tasks)
        fits = slot_fit if gpus else np.ones_like(slot_fit)
        return np.where(fits, (before - after)[:, None], -np.inf)
    # A share on slot g changes only slot g: patch the aggregates instead of recomputing them.
    r_new = (r - share_milli)[:, :, None]
    fits_new = ok & (r_new >= np.maximum(tasks.milli, 1)[None, None, :])
    count = p.count[:, None, :] - p.fits + fits_new
    fit_sum = p.fit_sum[:, None, :] - r[:, :, None] * p.fits + r_new * fits_new
    after = combine(np.broadcast_to((u - share_milli)[:, None], r.shape),
                    np.broadcast_to(cpu_after[:, None], r.shape), count, fit_sum, tasks)
    return np.where(slot_fit, before[:, None] - after, -np.inf)
