"""`filters.fit` for a single node row, in plain Python over its few GPU slots.

Bind re-checks one node, and the simulator binds every pod it places: through the vectorised
`fit` that check is some thirty numpy calls on one-row arrays, ~100-200 µs of call overhead for
eight slots of work. Here the row is read once (`tolist`) and the same checks run as Python
comparisons. The answer is `fit`'s for that row exactly: same precedence, same slots
(tests/core/test_fit_one.py holds it to that over random states and pods).
"""

from __future__ import annotations

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.model import Sharing
from scheduler.core.request import PodRequest, SharingNeed
from scheduler.core.state import ClusterState
from scheduler.core.verdict import Reason

_NO_SHARING_REASON = {SharingNeed.ANY: Reason.NO_SHAREABLE_GPU, SharingNeed.MPS: Reason.NO_MPS_GPU,
                      SharingNeed.TIME_SLICING: Reason.NO_TIME_SLICED_GPU}


def fit_one(state: ClusterState, pod: PodRequest, row: int, models: np.ndarray) -> tuple[Reason, np.ndarray]:
    """(reason, bool [G] slots that could hold the pod, all False unless it fits) for one row.
    `models` is `filters.model_mask(state, pod)`."""
    reason, slots = _check(state, pod, row, models)
    fits = reason is Reason.FITS
    return reason, np.array([fits and s for s in slots] if slots else [False] * state.slots, bool)


def _check(state: ClusterState, pod: PodRequest, row: int, models: np.ndarray) -> tuple[Reason, list[bool]]:
    if state.unavailable[row]:
        return Reason.NODE_UNAVAILABLE, []
    slot_fit: list[bool] = []
    capacity: list[Reason] = []
    if pod.wants_gpu:
        present = state.present[row].tolist()
        model_ok = models[state.model_id[row]].tolist()
        usable_flags = state.usable[row].tolist()
        mig = state.mig[row].tolist()
        allowed = [p and m for p, m in zip(present, model_ok, strict=True)]
        usable = [a and u for a, u in zip(allowed, usable_flags, strict=True)]
        need = pod.gpus or 1
        allowed_count = sum(allowed)
        if not any(present):
            return Reason.NO_GPUS, []
        if allowed_count == 0:
            return Reason.MODEL_EXCLUDED, []
        if allowed_count < need:
            return Reason.TOO_FEW_GPUS, []
        if sum(a and not m for a, m in zip(allowed, mig, strict=True)) < need:
            return Reason.ALL_MIG, []
        if sum(usable) < need:
            return Reason.UNHEALTHY, []
        gpu_memory = state.gpu_memory[row].tolist()
        free_milli = state.free_milli[row].tolist()
        free_memory = state.free_memory[row].tolist()
        want_memory = pod.gpu_memory_mib
        if pod.is_share:
            sharing_ok = _sharing_ok(state.sharing[row].tolist(), pod.sharing)
            shareable = [u and s for u, s in zip(usable, sharing_ok, strict=True)]
            big_enough = [s and m >= want_memory for s, m in zip(shareable, gpu_memory, strict=True)]
            enough_milli = [b and f >= pod.gpu_milli for b, f in zip(big_enough, free_milli, strict=True)]
            slot_fit = [e and f >= want_memory for e, f in zip(enough_milli, free_memory, strict=True)]
            if not any(shareable):
                return _NO_SHARING_REASON[pod.sharing], []
            if not any(big_enough):
                return Reason.GPU_TOO_SMALL, []
            if not any(enough_milli):
                capacity.append(Reason.NO_GPU_WITH_ROOM)
            elif not any(slot_fit):
                capacity.append(Reason.INSUFFICIENT_GPU_MEMORY)
        else:
            big_enough = [u and m >= want_memory for u, m in zip(usable, gpu_memory, strict=True)]
            slot_fit = [b and milli == MILLI_PER_GPU and free == total
                        for b, milli, free, total in zip(big_enough, free_milli, free_memory, gpu_memory, strict=True)]
            if sum(big_enough) < need:
                return Reason.GPU_TOO_SMALL, []
            if sum(slot_fit) < need:
                capacity.append(Reason.NO_GPU_WITH_ROOM if need == 1 else Reason.INSUFFICIENT_WHOLE_GPUS)
    if int(state.cpu_total[row]) < pod.cpu_milli:
        return Reason.CPU_CAPACITY, slot_fit
    if int(state.mem_total[row]) < pod.memory_mib:
        return Reason.MEMORY_CAPACITY, slot_fit
    if capacity:
        return capacity[0], slot_fit
    if int(state.cpu_free[row]) < pod.cpu_milli:
        return Reason.INSUFFICIENT_CPU, slot_fit
    if int(state.mem_free[row]) < pod.memory_mib:
        return Reason.INSUFFICIENT_MEMORY, slot_fit
    return Reason.FITS, slot_fit


def _sharing_ok(sharing: list[int], need: SharingNeed) -> list[bool]:
    if need is SharingNeed.MPS:
        return [s == Sharing.MPS for s in sharing]
    if need is SharingNeed.TIME_SLICING:
        return [s == Sharing.TIME_SLICING for s in sharing]
    return [s != Sharing.EXCLUSIVE for s in sharing]
