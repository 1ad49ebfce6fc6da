"""Which candidate nodes can take a pod now, with a reason for each that cannot.

One function, `fit`, answers for a batch of node rows at once: a handful of array operations
over the (node, slot) GPU table, no loop over nodes. It also returns which GPU slots could hold
the pod, which the scores and the GPU pick reuse.

Reason precedence: unresolvable reasons first (most fundamental first), then resolvable ones,
so a node is reported for the deepest cause (a T4 node is "model not allowed", not "busy").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.model import Sharing
from scheduler.core.request import PodRequest, SharingNeed
from scheduler.core.state import ClusterState
from scheduler.core.verdict import Reason


@dataclass(frozen=True)
class Fit:
    """The filter's answer for `rows` (node rows of the state, in the caller's order)."""

    rows: np.ndarray
    """int64 [B]"""
    codes: np.ndarray
    """int16 [B], `Reason` values; 0 where the pod fits."""
    slot_fit: np.ndarray
    """bool [B, G]: GPU slots that could hold the pod (whole: fully free; share: enough left)."""

    @property
    def fits(self) -> np.ndarray:
        return self.codes == 0


def model_mask(state: ClusterState, pod: PodRequest) -> np.ndarray:
    """bool [len(models) + 1]: allowed models by id; the extra last entry (id -1, absent slot) is False."""
    mask = np.zeros(len(state.models) + 1, bool)
    for i, model in enumerate(state.models):
        mask[i] = pod.models.matches(model)
    return mask


def fit(state: ClusterState, pod: PodRequest, rows: np.ndarray, models: np.ndarray | None = None) -> Fit:
    """Filter `rows` for `pod`. `models` is `model_mask(state, pod)`, passed in when cached."""
    rows = np.asarray(rows, np.int64)
    if models is None:
        models = model_mask(state, pod)
    cpu_total, cpu_free = state.cpu_total[rows], state.cpu_free[rows]
    mem_total, mem_free = state.mem_total[rows], state.mem_free[rows]
    unresolvable = [(state.unavailable[rows], Reason.NODE_UNAVAILABLE)]
    resolvable: list[tuple[np.ndarray, Reason]] = []

    if pod.wants_gpu:
        present = state.present[rows]
        allowed = present & models[state.model_id[rows]]
        not_mig = allowed & ~state.mig[rows]
        usable = allowed & state.usable[rows]
        need = pod.gpus or 1
        unresolvable += [
            (present.sum(1) == 0, Reason.NO_GPUS),
            (allowed.sum(1) == 0, Reason.MODEL_EXCLUDED),
            (allowed.sum(1) < need, Reason.TOO_FEW_GPUS),
            (not_mig.sum(1) < need, Reason.ALL_MIG),
            (usable.sum(1) < need, Reason.UNHEALTHY),
        ]
        gpu_memory = state.gpu_memory[rows]
        free_milli = state.free_milli[rows]
        free_memory = state.free_memory[rows]
        if pod.is_share:
            shareable = usable & _sharing_ok(state.sharing[rows], pod.sharing)
            big_enough = shareable & (gpu_memory >= pod.gpu_memory_mib)
            enough_milli = big_enough & (free_milli >= pod.gpu_milli)
            slot_fit = enough_milli & (free_memory >= pod.gpu_memory_mib)
            unresolvable += [
                (~shareable.any(1), _NO_SHARING_REASON[pod.sharing]),
                (~big_enough.any(1), Reason.GPU_TOO_SMALL),
            ]
            resolvable += [
                (~enough_milli.any(1), Reason.NO_GPU_WITH_ROOM),
                (~slot_fit.any(1), Reason.INSUFFICIENT_GPU_MEMORY),
            ]
        else:
            big_enough = usable & (gpu_memory >= pod.gpu_memory_mib)
            slot_fit = big_enough & (free_milli == MILLI_PER_GPU) & (free_memory == gpu_memory)
            unresolvable.append((big_enough.sum(1) < need, Reason.GPU_TOO_SMALL))
            # One GPU short reads as the share case does; several as a count.
            short = Reason.NO_GPU_WITH_ROOM if need == 1 else Reason.INSUFFICIENT_WHOLE_GPUS
            resolvable.append((slot_fit.sum(1) < need, short))
    else:
        slot_fit = np.zeros((len(rows), state.slots), bool)

    unresolvable += [(cpu_total < pod.cpu_milli, Reason.CPU_CAPACITY),
                     (mem_total < pod.memory_mib, Reason.MEMORY_CAPACITY)]
    resolvable += [(cpu_free < pod.cpu_milli, Reason.INSUFFICIENT_CPU),
                   (mem_free < pod.memory_mib, Reason.INSUFFICIENT_MEMORY)]
    conditions = unresolvable + resolvable
    codes = np.select([cond for cond, _ in conditions], [int(r) for _, r in conditions], 0).astype(np.int16)
    return Fit(rows=rows, codes=codes, slot_fit=slot_fit & (codes == 0)[:, None])


_NO_SHARING_REASON = {SharingNeed.ANY: Reason.NO_SHAREABLE_GPU, SharingNeed.MPS: Reason.NO_MPS_GPU,
                      SharingNeed.TIME_SLICING: Reason.NO_TIME_SLICED_GPU}


def _sharing_ok(sharing: np.ndarray, need: SharingNeed) -> np.ndarray:
    if need is SharingNeed.MPS:
        return sharing == Sharing.MPS
    if need is SharingNeed.TIME_SLICING:
        return sharing == Sharing.TIME_SLICING
    return sharing != Sharing.EXCLUSIVE
