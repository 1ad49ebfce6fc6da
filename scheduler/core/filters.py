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
    else:
        rows = row_ids = np.asarray(rows, np.int64)
    if models is None:
        models = model_mask(state, pod)
    # Checks in precedence order; the first that holds is the node's reason.
    checks: list[tuple[np.ndarray, Reason]] = [(state.unavailable[rows], Reason.NODE_UNAVAILABLE)]
    capacity: list[tuple[np.ndarray, Reason]] = []
    if pod.wants_gpu:
        present = state.present[rows]
        allowed = present & models[state.model_id[rows]]
        usable = allowed & state.usable[rows]
        need = pod.gpus or 1
        allowed_count = count(allowed)
        checks += [
            (count(present) == 0, Reason.NO_GPUS),
            (allowed_count == 0, Reason.MODEL_EXCLUDED),
            (allowed_count < need, Reason.TOO_FEW_GPUS),
            (count(allowed & ~state.mig[rows]) < need, Reason.ALL_MIG),
            (count(usable) < need, Reason.UNHEALTHY),
        ]
        gpu_memory = state.gpu_memory[rows]
        free_milli = state.free_milli[rows]
        free_memory = state.free_memory[rows]
        if pod.is_share:
            shareable = usable & _sharing_ok(state.sharing[rows], pod.sharing)
            big_enough = shareable & (gpu_memory >= pod.gpu_memory_mib)
            enough_milli = big_enough & (free_milli >= pod.gpu_milli)
            slot_fit = enough_milli & (free_memory >= pod.gpu_memory_mib)
            checks += [(~any_set(shareable), _NO_SHARING_REASON[pod.sharing]),
                       (~any_set(big_enough), Reason.GPU_TOO_SMALL)]
            capacity += [(~any_set(enough_milli), Reason.NO_GPU_WITH_ROOM),
                         (~any_set(slot_fit), Reason.INSUFFICIENT_GPU_MEMORY)]
        else:
            big_enough = usable & (gpu_memory >= pod.gpu_memory_mib)
            slot_fit = big_enough & (free_milli == MILLI_PER_GPU) & (free_memory == gpu_memory)
            checks.append((count(big_enough) < need, Reason.GPU_TOO_SMALL))
            # One GPU short reads as the share case does; several as a count.
            short = Reason.NO_GPU_WITH_ROOM if need == 1 else Reason.INSUFFICIENT_WHOLE_GPUS
            capacity.append((count(slot_fit) < need, short))
    else:
        slot_fit = np.zeros((len(row_ids), state.slots), bool)
    checks += [(state.cpu_total[rows] < pod.cpu_milli, Reason.CPU_CAPACITY),
               (state.mem_total[rows] < pod.memory_mib, Reason.MEMORY_CAPACITY),
               *capacity,
               (state.cpu_free[rows] < pod.cpu_milli, Reason.INSUFFICIENT_CPU),
               (state.mem_free[rows] < pod.memory_mib, Reason.INSUFFICIENT_MEMORY)]
    codes = np.zeros(len(row_ids), np.int16)
    for condition, reason in reversed(checks):  # earlier checks overwrite later ones
        codes[condition] = reason
    return Fit(rows=row_ids, codes=codes, slot_fit=slot_fit & (codes == 0)[:, None])


_NO_SHARING_REASON = {SharingNeed.ANY: Reason.NO_SHAREABLE_GPU, SharingNeed.MPS: Reason.NO_MPS_GPU,
                      SharingNeed.TIME_SLICING: Reason.NO_TIME_SLICED_GPU}


def _sharing_ok(sharing: np.ndarray, need: SharingNeed) -> np.ndarray:
    if need is SharingNeed.MPS:
        return sharing == Sharing.MPS
    if need is SharingNeed.TIME_SLICING:
        return sharing == Sharing.TIME_SLICING
    return sharing != Sharing.EXCLUSIVE
