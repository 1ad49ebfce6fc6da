"""Which GPUs on the chosen node a pod gets. Pure functions of one node's row.

- Shares: best-fit (least capacity left after placing, so big holes stay whole) or worst-fit.
- Whole GPUs: when the node reports NVLink peers, the set with the most NVLink links among
  its members; among equals, the set leaving the most links between the GPUs still free;
  then the lowest indices. Without NVLink data this is simply the lowest free indices, the
  order the NVIDIA device plugin itself hands devices out in.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from scheduler.core.state import ClusterState

_EXHAUSTIVE_LIMIT = 5000


def share_best_fit(state: ClusterState, row: int, slot_fit: np.ndarray) -> int:
    """The fitting slot with the least free compute (then least free memory, then lowest index)."""
    candidates = np.flatnonzero(slot_fit)
    keys = np.lexsort((candidates, state.free_memory[row, candidates], state.free_milli[row, candidates]))
    return int(candidates[keys[0]])


def share_worst_fit(state: ClusterState, row: int, slot_fit: np.ndarray) -> int:
    """The fitting slot with the most free compute (then most free memory, then lowest index)."""
    candidates = np.flatnonzero(slot_fit)
    keys = np.lexsort((candidates, -state.free_memory[row, candidates], -state.free_milli[row, candidates]))
    return int(candidates[keys[0]])


def whole_gpus(state: ClusterState, row: int, slot_fit: np.ndarray, count: int) -> tuple[int, ...]:
    """`count` fully free slots, NVLink-connected when the node reports links."""
    free = [int(s) for s in np.flatnonzero(slot_fit)]
    if len(free) < count:
        raise ValueError(f"{count} GPUs asked, {len(free)} free")
    links = [int(m) for m in state.nvlink[row]]
    if not any(links[s] for s in free) or count == len(free):
        return tuple(free[:count])
    free_mask = _mask(free)

    def rank(group: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
        inside = _mask(group)
        internal = sum((links[s] & inside).bit_count() for s in group) // 2
        rest = free_mask & ~inside
        remaining = sum((links[s] & rest).bit_count() for s in free if rest >> s & 1) // 2
        return (-internal, -remaining, group)

    if comb(len(free), count) <= _EXHAUSTIVE_LIMIT:
        return min(combinations(free, count), key=rank)
    return _greedy(free, links, count)


def _greedy(free: list[int], links: list[int], count: int) -> tuple[int, ...]:
    best: tuple[int, ...] | None = None
    best_links = -1
    for start in free:
        group = [start]
        while len(group) < count:
            inside = _mask(group)
            nxt = max((s for s in free if not inside >> s & 1), key=lambda s: ((links[s] & inside).bit_count(), -s))
            group.append(nxt)
        inside = _mask(group)
        total = sum((links[s] & inside).bit_count() for s in group) // 2
        if total > best_links:
            best, best_links = tuple(sorted(group)), total
    assert best is not None
    return best


def _mask(slots) -> int:
    mask = 0
    for s in slots:
        mask |= 1 << s
    return mask
