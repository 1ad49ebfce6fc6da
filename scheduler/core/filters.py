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


def count(mask: np.ndarray) -> np.ndarray:
    """Per row, how many slots are set: a popcount over the row's 64-bit words (rows are padded
    to a multiple of 8 slots), several times faster than a boolean sum along a short axis."""
    words = np.ascontiguousarray(mask).view(np.uint64)
    bits = np.bitwise_count(words)
    return bits[:, 0] if bits.shape[1] == 1 else bits.sum(1, dtype=np.int64)


def any_set(mask: np.ndarray) -> np.ndarray:
    """Per row, whether any slot is set."""
    words = np.ascontiguousarray(mask).view(np.uint64)
    return words[:, 0] != 0 if words.shape[1] == 1 else (words != 0).any(1)


def fit(state: ClusterState, pod: PodRequest, rows: np.ndarray | slice, models: np.ndarray | None = None) -> Fit:
    """Filter `rows` (row ids, or a slice of rows) for `pod`. `models` is `model_mask(state, pod)`,
    passed in when cached."""
    if isinstance(rows, slice):
        row_ids = np.arange(rows.start, rows.stop, dtype=np.int64)

        def at(array: np.ndarray) -> np.ndarray:
            return array[rows]
    else:
        row_ids = np.asarray(rows, np.int64)

        def at(array: np.ndarray) -> np.ndarray:
            return array.take(row_ids, 0)  # several times cheaper than fancy indexing on few rows
    if models is None:
        models = model_mask(state, pod)
    # Checks in precedence order; the first that holds is the node's reason. Reasons as plain
    # ints: numpy handles an IntEnum member as a Python object, several times slower.
    checks: list[tuple[np.ndarray, int]] = [(at(state.unavailable), _NODE_UNAVAILABLE)]
    capacity: list[tuple[np.ndarray, int]] = []
    if pod.wants_gpu:
        present = at(state.present)
        allowed = present & models.take(at(state.model_id))
        usable = allowed & at(state.usable)
        need = pod.gpus or 1
        allowed_count = count(allowed)
        checks += [
            (count(present) == 0, _NO_GPUS),
            (allowed_count == 0, _MODEL_EXCLUDED),
            (allowed_count < need, _TOO_FEW_GPUS),
            (count(allowed & ~at(state.mig)) < need, _ALL_MIG),
            (count(usable) < need, _UNHEALTHY),
        ]
        gpu_memory = at(state.gpu_memory)
        free_milli = at(state.free_milli)
        free_memory = at(state.free_memory)
        if pod.is_share:
            shareable = usable & _sharing_ok(at(state.sharing), pod.sharing)
            big_enough = shareable & (gpu_memory >= pod.gpu_memory_mib)
            enough_milli = big_enough & (free_milli >= pod.gpu_milli)
            slot_fit = enough_milli & (free_memory >= pod.gpu_memory_mib)
            checks += [(~any_set(shareable), int(_NO_SHARING_REASON[pod.sharing])),
                       (~any_set(big_enough), _GPU_TOO_SMALL)]
            capacity += [(~any_set(enough_milli), _NO_GPU_WITH_ROOM),
                         (~any_set(slot_fit), _INSUFFICIENT_GPU_MEMORY)]
        else:
            big_enough = usable & (gpu_memory >= pod.gpu_memory_mib)
            slot_fit = big_enough & (free_milli == MILLI_PER_GPU) & (free_memory == gpu_memory)
            checks.append((count(big_enough) < need, _GPU_TOO_SMALL))
            # One GPU short reads as the share case does; several as a count.
            short = _NO_GPU_WITH_ROOM if need == 1 else _INSUFFICIENT_WHOLE_GPUS
            capacity.append((count(slot_fit) < need, short))
    else:
        slot_fit = np.zeros((len(row_ids), state.slots), bool)
    checks += [(at(state.cpu_total) < pod.cpu_milli, _CPU_CAPACITY),
               (at(state.mem_total) < pod.memory_mib, _MEMORY_CAPACITY),
               *capacity,
               (at(state.cpu_free) < pod.cpu_milli, _INSUFFICIENT_CPU),
               (at(state.mem_free) < pod.memory_mib, _INSUFFICIENT_MEMORY)]
    codes = np.zeros(len(row_ids), np.int16)
    for condition, reason in reversed(checks):  # earlier checks overwrite later ones
        codes[condition] = reason
    return Fit(rows=row_ids, codes=codes, slot_fit=slot_fit & (codes == 0)[:, None])


_NO_SHARING_REASON = {SharingNeed.ANY: Reason.NO_SHAREABLE_GPU, SharingNeed.MPS: Reason.NO_MPS_GPU,
                      SharingNeed.TIME_SLICING: Reason.NO_TIME_SLICED_GPU}


_NODE_UNAVAILABLE, _NO_GPUS, _MODEL_EXCLUDED, _TOO_FEW_GPUS, _ALL_MIG, _UNHEALTHY = (
    int(r) for r in (Reason.NODE_UNAVAILABLE, Reason.NO_GPUS, Reason.MODEL_EXCLUDED, Reason.TOO_FEW_GPUS,
                     Reason.ALL_MIG, Reason.UNHEALTHY))
_GPU_TOO_SMALL, _CPU_CAPACITY, _MEMORY_CAPACITY = (
    int(r) for r in (Reason.GPU_TOO_SMALL, Reason.CPU_CAPACITY, Reason.MEMORY_CAPACITY))
_NO_GPU_WITH_ROOM, _INSUFFICIENT_GPU_MEMORY, _INSUFFICIENT_WHOLE_GPUS, _INSUFFICIENT_CPU, _INSUFFICIENT_MEMORY = (
    int(r) for r in (Reason.NO_GPU_WITH_ROOM, Reason.INSUFFICIENT_GPU_MEMORY, Reason.INSUFFICIENT_WHOLE_GPUS,
                     Reason.INSUFFICIENT_CPU, Reason.INSUFFICIENT_MEMORY))
_MPS, _TIME_SLICING, _EXCLUSIVE = int(Sharing.MPS), int(Sharing.TIME_SLICING), int(Sharing.EXCLUSIVE)


def _sharing_ok(sharing: np.ndarray, need: SharingNeed) -> np.ndarray:
    if need is SharingNeed.MPS:
        return sharing == _MPS
    if need is SharingNeed.TIME_SLICING:
        return sharing == _TIME_SLICING
    return sharing != _EXCLUSIVE
