"""Curves over arrived load, binned as the FGD artifact's analysis does (experiments/analysis/merge_*.py).

A run records one sample after every pod (plus one before the first): the GPU request arrived so
far, and what is allocated / fragmented then. For each whole percent k of capacity (0..130), the
value is the mean of the samples whose arrival rounds to k, or, when none does, of those rounding
to k-1..k+1; allocation samples are rounded to 0.01 % before averaging, as there. This is the
definition behind every published number we compare with. Where the artifact would have no value
(a small cluster, where one pod is more than 1 % of capacity) we take the last sample before k %
arrived; above the last arrival there is none (NaN, `null` in JSON).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POINTS = np.arange(131)


@dataclass(frozen=True)
class Curve:
    """Per percent of capacity arrived (0..130): allocated %, fragment amount %, fragment ratio %."""

    arrived_pct: np.ndarray
    allocated_pct: np.ndarray
    fragment_pct: np.ndarray
    fragment_ratio_pct: np.ndarray

    def at(self, pct: int, what: str = "allocated_pct") -> float:
        return float(getattr(self, what)[pct])

    def rows(self) -> list[dict[str, float]]:
        return [{"arrived_pct": int(a), "allocated_pct": _num(al), "unallocated_pct": _num(100.0 - al),
                 "fragment_pct": _num(fr), "fragment_ratio_pct": _num(ra)}
                for a, al, fr, ra in zip(self.arrived_pct, self.allocated_pct, self.fragment_pct,
                                         self.fragment_ratio_pct, strict=True)]


class Samples:
    """Preallocated per-pod samples (arrived, allocated, fragment, idle; all milli-GPU)."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros((capacity, 4))
        self.count = 0

    def record(self, arrived: int, allocated: int, fragment: float, idle: float) -> None:
        if self.count == len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[self.count] = (arrived, allocated, fragment, idle)
        self.count += 1

    def curve(self, gpus: int) -> Curve:
        """Binned over a cluster of `gpus` GPUs (the artifact's float expressions, for identical rounding)."""
        arrived, allocated, fragment, idle = self._data[:self.count].T
        bins = np.round(arrived / gpus / 10).astype(np.int64)
        ratio = np.divide(100.0 * fragment, idle, out=np.zeros_like(fragment), where=idle > 0)
        return Curve(POINTS, binned(bins, np.round(allocated / gpus / 10, 2)),
                     binned(bins, 100 * fragment / 1000 / gpus), binned(bins, ratio))


def binned(bins: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of `values` per bin 0..130 (nan where no sample is within one bin), rounded to 0.01."""
    inside = (bins >= 0) & (bins <= POINTS[-1])
    sums = np.bincount(bins[inside], values[inside], minlength=len(POINTS))
    counts = np.bincount(bins[inside], minlength=len(POINTS)).astype(np.float64)
    # The fallback window k-1..k+1 may reach one past 130, as the artifact's does.
    above = (bins == POINTS[-1] + 1)
    pad_sum = np.concatenate([[0.0], sums, [values[above].sum()]])
    pad_count = np.concatenate([[0.0], counts, [float(above.sum())]])
    window_sum = pad_sum[:-2] + pad_sum[1:-1] + pad_sum[2:]
    window_count = pad_count[:-2] + pad_count[1:-1] + pad_count[2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, window_sum / window_count)
    gaps = np.flatnonzero(np.isnan(mean) & (bins.max(initial=-1) >= POINTS))
    if len(gaps):  # bins never decrease (arrivals accumulate): the last sample at or below k
        mean[gaps] = values[np.searchsorted(bins, gaps, side="right") - 1]
    return np.round(mean, 2)


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 2)
