"""`filters.fit` over every node row, kept per pod shape and refreshed only where a node changed.

A node's verdict for a pod depends on the pod's shape and that node's own row, never on other
nodes, and every change to a row gives it a version never used before (`state`). So a shape's
verdicts stay right on every row whose version is unchanged. The simulator asks about every row
for every pod, and a trace's few hundred shapes recur thousands of times: most pods re-check only
the handful of nodes touched since their shape was last asked about (on openb default the median
is six rows of 1,523), instead of the whole table.

The answer is `filters.fit`'s exactly (codes and slots), row for row; tests/core/test_fit_memo.py
holds it to that over random states and mutation sequences.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from scheduler.core import filters
from scheduler.core.fit_one import fit_one
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState
from scheduler.core.verdict import Reason

SCALAR_ROWS = 3
"""Up to this many stale rows are re-checked one by one (`fit_one`, ~20 µs a row); more go through
the vectorised `fit` at once, whose ~70 µs is numpy call overhead whatever the row count."""
MEMO_BYTES = 32 << 20
"""Shapes kept while their arrays fit this many bytes, least recently asked about dropped first
(~18 bytes per row and shape: at 1,500 nodes every shape of a trace fits; at 50,000, ~35 shapes)."""


@dataclass
class _Entry:
    structure: int
    version: np.ndarray
    codes: np.ndarray
    slot_fit: np.ndarray


class FitMemo:
    """One state's verdicts per pod shape (`PodRequest.shape`: everything `fit` reads of the pod)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._all_rows = np.zeros(0, np.int64)

    def fit(self, state: ClusterState, pod: PodRequest, stop: int, models: np.ndarray) -> filters.Fit:
        """`filters.fit(state, pod, slice(0, stop), models)`. Its arrays are the memo's own, valid
        until the next call: read them (or copy) before changing the books or asking again."""
        entry = self._entry(state, pod)
        stale = (entry.version[:stop] != state.version[:stop]).nonzero()[0]  # flatnonzero, less its wrapper
        if len(stale) > SCALAR_ROWS:
            fresh = filters.fit(state, pod, stale, models)
            entry.codes[stale] = fresh.codes
            entry.slot_fit[stale] = fresh.slot_fit
        else:
            for row in stale.tolist():
                reason, slot_fit = fit_one(state, pod, row, models)
                entry.codes[row] = reason
                entry.slot_fit[row] = slot_fit
        entry.version[stale] = state.version[stale]
        if len(self._all_rows) < stop:
            self._all_rows = np.arange(max(stop, state.rows), dtype=np.int64)
        return filters.Fit(rows=self._all_rows[:stop], codes=entry.codes[:stop], slot_fit=entry.slot_fit[:stop])

    def fit_row(self, state: ClusterState, pod: PodRequest, row: int, models: np.ndarray) -> tuple[Reason, np.ndarray]:
        """`fit_one(state, pod, row, models)`, from the memo when it holds the row's current version
        (a bind right after its filter); else checked afresh, and kept when the shape has an entry."""
        entry = self._entries.get(pod.shape)
        if entry is None or entry.structure != state.structure_version or entry.slot_fit.shape != state.present.shape:
            return fit_one(state, pod, row, models)
        if entry.version[row] == state.version[row]:
            return Reason(int(entry.codes[row])), entry.slot_fit[row].copy()
        reason, slot_fit = fit_one(state, pod, row, models)
        entry.codes[row], entry.slot_fit[row], entry.version[row] = reason, slot_fit, state.version[row]
        return reason, slot_fit

    def _entry(self, state: ClusterState, pod: PodRequest) -> _Entry:
        key = pod.shape
        entry = self._entries.pop(key, None)  # re-inserted below: most recently used last
        if entry is None or entry.structure != state.structure_version or entry.slot_fit.shape != state.present.shape:
            per_shape = state.rows * (8 + 2 + state.slots)
            while self._entries and (len(self._entries) + 1) * per_shape > MEMO_BYTES:
                self._entries.popitem(last=False)
            entry = _Entry(state.structure_version, np.full(state.rows, -1, np.int64),
                           np.zeros(state.rows, np.int16), np.zeros(state.present.shape, bool))
        self._entries[key] = entry
        return entry
