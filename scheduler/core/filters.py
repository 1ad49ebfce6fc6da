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

    def take(array: np.ndarray) -> np.ndarray:  # np.take: several times faster than fancy indexing
        return array.take(rows, axis=0)

    unresolvable = [(take(state.unavailable), Reason.NODE_UNAVAILABLE)]
    resolvable: list[tuple[np.ndarray, Reason]] = []

    if pod.wants_gpu:
        present = take(state.present)
        allowed = present & models.take(take(state.model_id))
        usable = allowed & take(state.usable)
        need = pod.gpus or 1
        allowed_count = _count(allowed)
        unresolvable += [
            (~_any(present), Reason.NO_GPUS),
            (allowed_count == 0, Reason.MODEL_EXCLUDED),
            (allowed_count < need, Reason.TOO_FEW_GPUS),
            (_count(allowed & ~take(state.mig)) < need, Reason.ALL_MIG),
            (_count(usable) < need, Reason.UNHEALTHY),
        ]
        memory = pod.gpu_memory_mib
        free_milli = take(state.free_milli)
        if pod.is_share:
            shareable = usable & _sharing_ok(take(state.sharing), pod.sharing)
            big_enough = shareable & (take(state.gpu_memory) >= memory) if memory else shareable
            enough_milli = big_enough & (free_milli >= pod.gpu_milli)
            slot_fit = enough_milli & (take(state.free_memory) >= memory) if memory else enough_milli
            unresolvable += [
                (~_any(shareable), _NO_SHARING_REASON[pod.sharing]),
                (~_any(big_enough), Reason.GPU_TOO_SMALL),
            ]
            resolvable += [
                (~_any(enough_milli), Reason.NO_GPU_WITH_ROOM),
                (~_any(slot_fit), Reason.INSUFFICIENT_GPU_MEMORY),
            ]
        else:
            gpu_memory = take(state.gpu_memory)
            big_enough = usable & (gpu_memory >= memory) if memory else usable
            slot_fit = big_enough & (free_milli == MILLI_PER_GPU) & (take(state.free_memory) == gpu_memory)
            unresolvable.append((_count(big_enough) < need, Reason.GPU_TOO_SMALL))
            # One GPU short reads as the share case does; several as a count.
            short = Reason.NO_GPU_WITH_ROOM if need == 1 else Reason.INSUFFICIENT_WHOLE_GPUS
            resolvable.append((_count(slot_fit) < need, short))
    else:
        slot_fit = np.zeros((len(rows), state.slots), bool)

    unresolvable += [(take(state.cpu_total) < pod.cpu_milli, Reason.CPU_CAPACITY),
                     (take(state.mem_total) < pod.memory_mib, Reason.MEMORY_CAPACITY)]
    resolvable += [(take(state.cpu_free) < pod.cpu_milli, Reason.INSUFFICIENT_CPU),
                   (take(state.mem_free) < pod.memory_mib, Reason.INSUFFICIENT_MEMORY)]
    codes = _first_reason(unresolvable + resolvable, len(rows))
    return Fit(rows=rows, codes=codes, slot_fit=slot_fit & (codes == 0)[:, None])


def _first_reason(conditions: list[tuple[np.ndarray, Reason]], size: int) -> np.ndarray:
    """int16 [B]: per row, the reason of the first condition that holds (precedence order), else 0."""
    stacked = np.stack([cond for cond, _ in conditions])
    first = stacked.argmax(0)
    hit = stacked[first, np.arange(size)]
    reasons = np.array([int(r) for _, r in conditions], np.int16)
    return np.where(hit, reasons[first], 0).astype(np.int16)


# Rows of 1, 2, 4 or 8 slots are one machine word: (dtype, the word with every byte 1, shift to the top byte).
_ROW_WORD = {w: (t, t(sum(1 << (8 * i) for i in range(w))), t(8 * (w - 1)))
             for w, t in ((1, np.uint8), (2, np.uint16), (4, np.uint32), (8, np.uint64))}


def _count(mask: np.ndarray) -> np.ndarray:
    """Per row, how many slots are set. Reductions along a short axis are slow in numpy; for the usual
    slot counts, each row's bytes are one machine word, summed with a multiply (all bytes are 0 or 1)."""
    word = _ROW_WORD.get(mask.shape[1])
    if word is None or not mask.flags.c_contiguous:
        return np.einsum("ij->i", mask.view(np.uint8))
    dtype, ones, shift = word
    return (mask.view(dtype)[:, 0] * ones) >> shift


def _any(mask: np.ndarray) -> np.ndarray:
    word = _ROW_WORD.get(mask.shape[1])
    if word is None or not mask.flags.c_contiguous:
        return mask.any(1)
    return mask.view(word[0])[:, 0] != 0


_NO_SHARING_REASON = {SharingNeed.ANY: Reason.NO_SHAREABLE_GPU, SharingNeed.MPS: Reason.NO_MPS_GPU,
                      SharingNeed.TIME_SLICING: Reason.NO_TIME_SLICED_GPU}


def _sharing_ok(sharing: np.ndarray, need: SharingNeed) -> np.ndarray:
    if need is SharingNeed.MPS:
        return sharing == Sharing.MPS
    if need is SharingNeed.TIME_SLICING:
        return sharing == Sharing.TIME_SLICING
    return sharing != Sharing.EXCLUSIVE
