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
    host: np.ndarray
    """bool [(models + 1) · 4, M]: `hostable` by slot kind, row 4·model id + 2·usable + exclusive
    (model id -1, an absent slot: the last four rows, all False). One gather per call instead of
    three masks over [B, G, M]."""
    threshold: np.ndarray
    """int64 [M]: free milli a slot needs to host m (1 for a CPU-only type: a full slot hosts nothing)."""
    gpu_need: np.ndarray
    """int64 [M]: GPUs able to host m that a node needs for m to run; for a CPU-only type more
    than any node has, as such a type never uses a node's GPU (F_n(m) = U_n)."""


def task_matrix(state: ClusterState, workload: Workload) -> TaskMatrix:
    types = workload.types
    allowed = np.zeros((len(state.models) + 1, len(types)), bool)
    for j, t in enumerate(types):
        for i, model in enumerate(state.models):
            allowed[i, j] = t.models.matches(model)
    milli = np.array([t.gpu_milli for t in types], np.int64)
    share = np.array([0 < t.gpu_milli < 1000 for t in types], bool)
    host = np.zeros((len(allowed), 4, len(types)), bool)
    host[:, 2] = allowed  # usable, shared
    host[:, 3] = allowed & ~share  # usable, exclusive: no shares
    return TaskMatrix(
        cpu=np.array([t.cpu_milli for t in types], np.int64),
        milli=milli,
        need=np.array([t.gpus for t in types], np.int64),
        wants_gpu=np.array([t.gpus > 0 for t in types], bool),
        share=share,
        allowed=allowed,
        weights=workload.weights.astype(np.float64),
        total=float(workload.weights.sum()),
        host=host.reshape(-1, len(types)),
        threshold=np.maximum(milli, 1),
        gpu_need=np.array([t.gpus if t.gpus > 0 else np.iinfo(np.int64).max for t in types], np.int64),
    )


_EXCLUSIVE = int(Sharing.EXCLUSIVE)  # a plain int: numpy compares with an IntEnum member several times slower


def free_share(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """int64 [B, G]: free milli per slot, zero where the GPU is absent, unhealthy or MIG."""
    return np.where(state.usable.take(rows, 0), state.free_milli.take(rows, 0), 0)


def hostable(state: ClusterState, rows: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """bool [B, G, M]: may type m use slot g at all (model, sharing mode, health)."""
    usable = state.usable.take(rows, 0)
    kind = state.model_id.take(rows, 0) * 4 + usable * 2 + (state.sharing.take(rows, 0) == _EXCLUSIVE)
    return tasks.host.take(kind, 0)


@dataclass(frozen=True)
class Parts:
    """Per (node, type) aggregates from which F follows: GPUs able to host m and their free sum."""

    fits: np.ndarray      # bool [B, G, M]
    count: np.ndarray     # int  [B, M]
    fit_sum: np.ndarray   # int  [B, M]


def parts(r: np.ndarray, ok: np.ndarray, tasks: TaskMatrix) -> Parts:
    fits = ok & (r[:, :, None] >= tasks.threshold)
    return Parts(fits, fits.sum(1), np.einsum("bg,bgm->bm", r, fits.astype(np.int64)))


def combine(u: np.ndarray, cpu: np.ndarray, count: np.ndarray, fit_sum: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """F(M) from the aggregates; `u`/`cpu` broadcast against the leading axes of `count` (size-1
    axes included: a node's U and CPU are the same for every candidate GPU).

    Σ_m w_m F(m) = U·Σw − Σ_{m that can run} w_m·fit_sum_m: every term an integer below 2^53, so
    exactly the per-type sum, with no [.., M] array of U."""
    can = (count >= tasks.gpu_need) & (cpu[..., None] >= tasks.cpu)
    return u * tasks.total - np.where(can, fit_sum, 0) @ tasks.weights


def node_fragmentation(state: ClusterState, rows: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """float64 [B]: F_n(M) in weighted milli-GPU (divide by tasks.total for the paper's unit)."""
    r = free_share(state, rows)
    p = parts(r, hostable(state, rows, tasks), tasks)
    return combine(r.sum(1), state.cpu_free.take(rows), p.count, p.fit_sum, tasks)


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
    cpu_free = state.cpu_free.take(rows)
    cpu_after = cpu_free - cpu_milli
    before = combine(u, cpu_free, p.count, p.fit_sum, tasks)
    if not gpus and not share_milli:  # CPU only: the GPUs stay as they are
        after = combine(u, cpu_after, p.count, p.fit_sum, tasks)
        return np.broadcast_to((before - after)[:, None], slot_fit.shape).copy()
    if not share_milli:
        take = slot_fit & (np.cumsum(slot_fit, axis=1) <= gpus)
        r_after = np.where(take, 0, r)
        pa = parts(r_after, ok, tasks)
        after = combine(r_after.sum(1), cpu_after, pa.count, pa.fit_sum, tasks)
        return np.where(slot_fit, (before - after)[:, None], -np.inf)
    # A share on slot g changes only slot g: patch the aggregates instead of recomputing them.
    r_new = (r - share_milli)[:, :, None]
    fits_new = ok & (r_new >= tasks.threshold)
    count = p.count[:, None, :] - p.fits + fits_new
    fit_sum = p.fit_sum[:, None, :] - r[:, :, None] * p.fits + r_new * fits_new
    after = combine((u - share_milli)[:, None], cpu_after[:, None], count, fit_sum, tasks)  # [B, 1]: broadcast
    return np.where(slot_fit, before[:, None] - after, -np.inf)
