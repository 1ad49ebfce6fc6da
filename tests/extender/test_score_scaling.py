"""Policy scores reach kube-scheduler in proportion to how much the policy prefers one node."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.policies import POLICIES
from scheduler.extender.wire import MAX_EXTENDER_PRIORITY, scale_array

scores = st.lists(st.one_of(st.floats(-1e7, 1e7), st.just(math.nan)), min_size=1, max_size=40)
spans = st.sampled_from(sorted({p.span for p in POLICIES.values()}))


def test_a_near_tie_costs_one_point_not_the_whole_range():
    assert scale_array(np.array([47.0008, 47.0007, 47.0006])).tolist() == [10, 9, 9]


def test_a_difference_too_small_to_divide_still_costs_its_point():
    # 5e-324 / 100 underflows to 0: found by the property test below on a fresh run
    assert scale_array(np.array([0.0, 5e-324]), span=100.0).tolist() == [9, 10]


def test_one_point_per_tenth_of_the_policy_span():
    assert scale_array(np.array([90.0, 80.0, 75.0, 40.0, 0.0, -500.0])).tolist() == [10, 9, 8, 5, 1, 0]
    assert scale_array(np.array([900_000.0, 650_000.0]), span=1e6).tolist() == [10, 7]


@given(scores, spans)
def test_ties_stay_ties_and_order_is_kept(values, span):
    raw = np.array(values)
    scaled = scale_array(raw, span)
    assert ((scaled >= 0) & (scaled <= MAX_EXTENDER_PRIORITY)).all()
    assert (scaled[np.isnan(raw)] == 0).all()
    valid = np.flatnonzero(~np.isnan(raw))
    for i in valid:
        for j in valid:
            if raw[i] == raw[j]:
                assert scaled[i] == scaled[j]
            elif raw[i] > raw[j]:
                assert scaled[i] >= scaled[j]


@given(scores, spans)
def test_kube_schedulers_best_is_exactly_the_policys_best(values, span):
    """The simulator over HTTP takes the nodes scored 10, in-process the policy's maximum: the same set."""
    raw = np.array(values)
    if np.isnan(raw).all():
        return
    assert set(np.flatnonzero(scale_array(raw, span) == MAX_EXTENDER_PRIORITY)) == set(np.flatnonzero(raw == np.nanmax(raw)))


@given(st.floats(0, 1e6), st.integers(0, 12), st.floats(0.05, 0.95), spans)
def test_points_lost_follow_the_difference(best, tenths, part, span):
    """A node (k + a part) tenths of the span below the best loses k + 1 points, 10 at most."""
    other = best - (tenths + part) * span / 10
    assert scale_array(np.array([best, other]), span)[1] == max(0, MAX_EXTENDER_PRIORITY - tenths - 1)
