"""The in-tree filter's `nvidia.com/gpu` count, kept per row as pods bind and leave and GPUs fail,
is what summing the GPU table afresh gives: advertised (present and healthy) less whole GPUs held."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.engine import BindRejected, Engine
from simulator.cluster_view import ClusterView
from tests.core.test_properties import clusters, requests


def _fresh_count(view: ClusterView) -> np.ndarray:
    s, n = view.state, view.size
    held = np.zeros(n, np.int64)
    for alloc in view.bound.values():
        if not alloc.share:
            held[s.index[alloc.node]] += len(alloc.slots)
    return (s.present[:n] & s.healthy[:n]).sum(1) - held


@settings(max_examples=150, deadline=None)
@given(clusters(), st.lists(st.tuples(st.sampled_from(["bind", "delete", "health"]), st.integers(0, 10**6)),
                            max_size=25), st.data())
def test_the_kept_gpu_count_is_the_fresh_one(nodes, steps, data):
    engine, view = Engine(nodes), ClusterView(nodes)
    for i, (step, pick) in enumerate(steps):
        names = view.names
        if step == "bind":
            pod = replace(data.draw(requests(i)), cpu_milli=0, memory_mib=0)
            passed = engine.filter(pod, names).passed
            if passed:
                with contextlib.suppress(BindRejected):
                    view.bind(engine.bind(pod.uid, pod.namespace, pod.name, passed[pick % len(passed)]))
        elif step == "delete" and view.bound:
            uid = sorted(view.bound)[pick % len(view.bound)]
            view.delete(uid)
            engine.release(uid)
        elif step == "health":
            spec = view.state.specs[pick % view.size]
            if spec.gpus:
                g = pick % len(spec.gpus)
                node = replace(spec, gpus=tuple(replace(x, healthy=not x.healthy) if x.index == g else x
                                                for x in spec.gpus))
                engine.upsert_node(node)
                view.replace_node(node)
        probe = replace(data.draw(requests(1000 + i)), cpu_milli=0, memory_mib=0)
        if probe.gpus:
            expected = (_fresh_count(view) >= probe.gpus) & ~view.state.unavailable[:view.size]
            assert view.in_tree(probe).tolist() == expected.tolist()
