"""`fit_one` is `filters.fit` for one row: the same reason and the same slots, whatever the books.

Random clusters are filled by random binds through the engine (shares, whole GPUs, cordoned
nodes), then every (pod, row) pair is checked both ways.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core import filters
from scheduler.core.engine import BindRejected, Engine
from scheduler.core.fit_one import fit_one
from scheduler.core.request import parse_pod
from scheduler.core.verdict import Reason
from tests.builders import node, pod
from tests.core.test_properties import clusters, requests


@st.composite
def books(draw):
    engine = Engine(draw(clusters()))
    names = [n for n in engine.state.names if n]
    for i in range(draw(st.integers(0, 12))):
        pod = draw(requests(1000 + i))
        answer = engine.filter(pod, names)
        if answer.passed:
            engine.bind(pod.uid, pod.namespace, pod.name, draw(st.sampled_from(answer.passed)))
    for name in names:
        if draw(st.integers(0, 5)) == 0:
            engine.set_node_unavailable(name, "cordoned")
    return engine, [draw(requests(i)) for i in range(draw(st.integers(1, 6)))]


@settings(max_examples=300, deadline=None)
@given(books())
def test_fit_one_answers_as_fit_does_for_that_row(case):
    engine, pods = case
    state = engine.state
    for request in pods:
        models = filters.model_mask(state, request)
        for row in state.live_rows().tolist():
            vectorised = filters.fit(state, request, np.array([row]), models)
            reason, slot_fit = fit_one(state, request, row, models)
            assert reason is Reason(int(vectorised.codes[0]))
            assert slot_fit.dtype == bool and slot_fit.tolist() == vectorised.slot_fit[0].tolist()


def test_a_bind_to_a_node_that_no_longer_fits_names_the_reason():
    engine = Engine([node("a").gpus(1).build()])
    first, second = parse_pod(pod("p1").gpus(1).build()), parse_pod(pod("p2").gpus(1).build())
    engine.filter(first, ["a"])
    engine.filter(second, ["a"])
    engine.bind(first.uid, first.namespace, first.name, "a")
    try:
        engine.bind(second.uid, second.namespace, second.name, "a")
    except BindRejected as e:
        assert str(e) == f"node a no longer fits {second.key}: {Reason.NO_GPU_WITH_ROOM.message}"
    else:
        raise AssertionError("the second bind should be refused")
