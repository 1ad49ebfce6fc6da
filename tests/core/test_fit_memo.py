"""The per-shape fit memo answers as a fresh `filters.fit` over every row does, after any sequence
of binds, releases, cordons, node changes and added nodes.

A few pod shapes are asked about again and again (new UIDs, the same shape), as in a trace, so the
memo's refresh of changed rows, both one by one and vectorised, is what gets checked.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core import filters
from scheduler.core.engine import BindRejected, Engine
from scheduler.core.fit_memo import SCALAR_ROWS, FitMemo
from scheduler.core.fit_one import fit_one
from tests.core.test_properties import clusters, requests


@st.composite
def histories(draw):
    nodes = draw(clusters())
    shapes = [draw(requests(i)) for i in range(draw(st.integers(1, 4)))]
    steps = []
    for _ in range(draw(st.integers(1, 30))):
        steps.append(draw(st.sampled_from(["ask", "ask", "ask", "release", "cordon", "uncordon", "health", "add"])))
    return nodes, shapes, steps, draw(st.randoms(use_true_random=False))


def _assert_rows_fresh(engine: Engine, pod) -> None:
    """`fit_row` (bind's one-row check) is `fit_one`, from the memo or not."""
    models = filters.model_mask(engine.state, pod)
    for row in range(engine.state.size):
        reason, slot_fit = engine._fit_memo.fit_row(engine.state, pod, row, models)
        expected = fit_one(engine.state, pod, row, models)
        assert reason is expected[0] and slot_fit.tolist() == expected[1].tolist()


def _assert_fresh(engine: Engine, pod) -> np.ndarray:
    _assert_rows_fresh(engine, pod)
    size = engine.state.size
    gate, memo = engine.fit_rows(pod, slice(0, size))
    assert gate == ""
    fresh = filters.fit(engine.state, pod, np.arange(size), filters.model_mask(engine.state, pod))
    assert memo.rows.tolist() == fresh.rows.tolist()
    assert memo.codes.dtype == fresh.codes.dtype and memo.codes.tolist() == fresh.codes.tolist()
    assert memo.slot_fit.tolist() == fresh.slot_fit.tolist()
    _assert_rows_fresh(engine, pod)
    return np.flatnonzero(fresh.codes == 0)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_memo_answers_as_a_fresh_fit_after_any_history(case):
    nodes, shapes, steps, rnd = case
    engine = Engine(nodes)
    bound: list[str] = []
    for i, step in enumerate(steps):
        names = [n for n in engine.state.names if n]
        if step == "ask":
            pod = replace(rnd.choice(shapes), uid=f"x{i}", name=f"x{i}")
            fits = _assert_fresh(engine, pod)
            if len(fits) and rnd.random() < 0.7:
                try:
                    engine.bind(pod.uid, pod.namespace, pod.name, engine.state.names[int(rnd.choice(fits.tolist()))])
                    bound.append(pod.uid)
                except BindRejected:
                    pass
        elif step == "release" and bound:
            engine.release(bound.pop(rnd.randrange(len(bound))))
        elif step == "cordon":
            engine.set_node_unavailable(rnd.choice(names), "cordoned")
        elif step == "uncordon":
            engine.set_node_unavailable(rnd.choice(names), "")
        elif step == "health":
            spec = engine.state.specs[engine.state.index[rnd.choice(names)]]
            if spec.gpus:
                g = rnd.randrange(len(spec.gpus))
                gpus = tuple(replace(x, healthy=not x.healthy) if x.index == g else x for x in spec.gpus)
                engine.upsert_node(replace(spec, gpus=gpus))
        elif step == "add":
            engine.upsert_node(replace(rnd.choice(nodes), name=f"added{i}"))
    for pod in shapes:
        _assert_fresh(engine, replace(pod, uid="last", name="last"))


def test_both_refresh_paths_are_taken(monkeypatch):
    """Few changed rows are re-checked one by one (`fit_one`), more at once (`filters.fit`)."""
    from scheduler.core import fit_memo
    from scheduler.core.request import parse_pod
    from tests.builders import node, pod

    monkeypatch.setattr("tests.core.test_fit_memo._assert_rows_fresh", lambda engine, pod: None)
    calls = {"one": 0, "vectorised": 0}
    one, vectorised = fit_memo.fit_one, fit_memo.filters.fit

    def counted_one(*args):
        calls["one"] += 1
        return one(*args)

    def counted_vectorised(*args):
        calls["vectorised"] += 1
        return vectorised(*args)

    monkeypatch.setattr(fit_memo, "fit_one", counted_one)
    monkeypatch.setattr(fit_memo.filters, "fit", counted_vectorised)
    engine = Engine([node(f"n{i}").gpus(2).build() for i in range(SCALAR_ROWS * 3)])
    shape = parse_pod(pod("p").gpus(1).build())
    _assert_fresh(engine, shape)  # a new shape: every row at once
    assert calls == {"one": 0, "vectorised": 2}  # the memo's, and the test's own
    engine.set_node_unavailable(engine.state.names[1], "cordoned")
    _assert_fresh(engine, replace(shape, uid="b", name="b"))
    assert calls == {"one": 1, "vectorised": 3}
    for name in engine.state.names[2:SCALAR_ROWS + 3]:
        engine.set_node_unavailable(name, "drained")
    _assert_fresh(engine, replace(shape, uid="c", name="c"))
    assert calls == {"one": 1, "vectorised": 5}
    assert isinstance(engine._fit_memo, FitMemo)
