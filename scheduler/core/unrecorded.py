"""Which GPUs to count for a running pod that holds GPUs but carries no gpusched record.

Pods bound by another scheduler (or by hand, with `spec.nodeName`) get their devices from the
NVIDIA device plugin, and nobody tells gpusched which ones until the node agent writes the record
(`gpusched.io/gpus`, from the kubelet's pod-resources API). Until then their GPUs must still be
counted, so the books charge them to GPUs chosen here.

The choice is a pure function of what is free, so an adapter that re-derives every unrecorded pod
of a node, in a canonical order, after any change on that node gets books that depend only on
the set of pods, never on the order events arrived in (a restarted extender rebuilds the same
books). Rules:
  1. whole GPUs: the lowest-indexed usable GPUs that are entirely free;
  2. a share: the lowest-indexed usable, shareable GPU with enough free compute and memory;
  3. what cannot be found is not counted (the caller reports the discrepancy).
"""

from __future__ import annotations

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.model import Sharing
from scheduler.core.state import ClusterState


def guess_slots(state: ClusterState, row: int, *, gpus: int = 0, milli: int = 0, memory_mib: int = 0) -> tuple[int, ...]:
    """Slots to charge an unrecorded pod with on node `row` (possibly fewer than asked)."""
    count = int(state.gpu_count[row])
    usable = state.usable[row, :count]
    if gpus > 0:
        free = np.flatnonzero(usable & (state.free_milli[row, :count] == MILLI_PER_GPU))
        return tuple(int(s) for s in free[:gpus])
    if milli > 0:
        shareable = state.sharing[row, :count] != int(Sharing.EXCLUSIVE)
        room = (state.free_milli[row, :count] >= milli) & (state.free_memory[row, :count] >= memory_mib)
        candidates = np.flatnonzero(usable & shareable & room)
        return (int(candidates[0]),) if candidates.size else ()
    return ()
