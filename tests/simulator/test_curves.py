"""Binning samples per percent of capacity, as the artifact's analysis scripts do."""

from __future__ import annotations

import math

import numpy as np

from simulator.curves import Samples, binned


def test_binned_means_per_percent_with_a_one_percent_window_where_empty():
    # bins: 0, 0, 1, 1, 3  ->  bin 2 has no sample: the mean of bins 1..3 is used (v = 3, 5, 9).
    bins = np.array([0, 0, 1, 1, 3])
    values = np.array([1.0, 2.0, 3.0, 5.0, 9.0])
    out = binned(bins, values)
    assert out[:4].tolist() == [1.5, 4.0, round((3 + 5 + 9) / 3, 2), 9.0]
    assert math.isnan(out[5])  # nothing within one percent of 5


def test_samples_bin_arrivals_by_rounding_to_the_nearest_percent():
    # One GPU (1000 milli): 1 % = 10 milli. Arrivals 4 and 6 milli round to 0 % and 1 %.
    samples = Samples(2)
    for arrived, allocated in [(0, 0), (4, 4), (6, 6), (14, 10), (16, 10)]:
        samples.record(arrived, allocated, fragment=0.0, idle=1000 - allocated)
    curve = samples.curve(gpus=1)
    assert curve.allocated_pct[:3].tolist() == [0.2, 0.8, 1.0]  # (0 + 0.4)/2, (0.6 + 1.0)/2, 1.0
    assert curve.rows()[1] == {"arrived_pct": 1, "allocated_pct": 0.8, "unallocated_pct": 99.2,
                               "fragment_pct": 0.0, "fragment_ratio_pct": 0.0}
