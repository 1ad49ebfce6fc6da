"""Every policy's score, split into named terms (`Policy.explain`), adds back up to the score
bit for bit, on random clusters with random pods already placed (hypothesis).

A rounding term is only the remainder an integer score drops (|value| < 1), so it cannot hide a
term that drifted from the score it explains.
"""

from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.engine import BindRejected, Engine, EngineSettings
from scheduler.core.policies import POLICIES
from scheduler.core.policies.base import weighted_sum
from tests.builders import node, pod
from tests.core.test_properties import clusters, requests


@st.composite
def scenes(draw):
    nodes = draw(clusters())
    placed = [draw(requests(i)) for i in range(draw(st.integers(0, 12)))]
    return nodes, placed, draw(requests(len(placed)))


def busy_engine(nodes, placed, policy: str) -> Engine:
    """The cluster after each placed pod went to its best node (as the extender would send it)."""
    engine = Engine(nodes, settings=EngineSettings(policy=policy, mix_refresh_every=4))
    names = [n.name for n in nodes]
    for request in placed:
        scored = {n: s for n, s in engine.scores(request, names) if s is not None}
        if scored:
            with contextlib.suppress(BindRejected):  # a gate the pod does not pass: it stays pending
                engine.place(request, max(sorted(scored), key=scored.__getitem__))  # ties: the first name
    return engine


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_terms_add_up_to_the_score_exactly(scene):
    nodes, placed, asked = scene
    for policy in sorted(POLICIES):
        engine = busy_engine(nodes, placed, policy)
        names = [n.name for n in nodes]
        expected = {n: s for n, s in engine.scores(asked, names) if s is not None}
        fitting, breakdown = engine.score_terms(asked, names)
        assert set(fitting) == set(expected), policy
        if breakdown is None:
            continue
        assert all(len(t.values) == len(fitting) for t in (*breakdown.terms, *breakdown.inputs)), policy
        total = weighted_sum(breakdown.terms, len(fitting))
        assert total.tolist() == [expected[n] for n in fitting], policy
        for term in breakdown.terms:
            if term.rounding:
                assert (np.abs(term.values) < 1).all(), (policy, term.name)


def test_a_rounding_term_is_what_the_integer_score_drops():
    # bestfit on an empty 8-GPU, 128-core node, pod of 1 GPU and 0 CPU:
    # 100 − 50·(128000/128000) − 50·(7000/8000) = 6.25, truncated to 6: the remainder is −0.25
    engine = Engine([node("n").cpu(128_000).gpus(8).build()], settings=EngineSettings(policy="bestfit"))
    fitting, breakdown = engine.score_terms(pod("p").gpus(1).request(), ["n"])
    assert fitting == ["n"]
    assert [(t.name, t.weight, t.values.tolist()) for t in breakdown.terms] == [
        ("a full node", 100.0, [1.0]), ("CPU left after / 128 cores", -50.0, [1.0]),
        ("GPU left after / 8 GPUs", -50.0, [0.875]), ("truncated to an integer", 1.0, [-0.25])]
