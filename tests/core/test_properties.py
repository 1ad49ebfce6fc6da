"""Invariants of the books under random clusters and random pod streams (hypothesis).

- No GPU is ever over-allocated: 0 <= free milli <= 1000 and 0 <= free memory <= size.
- A whole GPU is never shared, a share never lands on an exclusive GPU, a pod never lands on
  a model it excluded, and CPU/memory never go below zero.
- The arrays always equal what the allocations add up to.
- A refused bind or an invalid request changes nothing; bind is idempotent.
- Releasing everything gives back the empty cluster.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.engine import BindRejected, Engine, EngineSettings
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.policies import POLICIES
from scheduler.core.request import PodRequest, SharingNeed
from scheduler.core.selector import ModelSelector
from scheduler.core.view import state_view

MODELS = ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "Tesla-T4"]


@st.composite
def clusters(draw) -> list[Node]:
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        count = draw(st.integers(0, 8))
        model = draw(st.sampled_from(MODELS))
        sharing = draw(st.sampled_from(list(Sharing)))
        gpus = tuple(Gpu(g, f"GPU-{i}-{g}", model, draw(st.sampled_from([16384, 81920])), sharing,
                         mig_enabled=draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),
                         healthy=draw(st.integers(0, 9)) > 0,
                         nvlink_peers=tuple(p for p in range(count) if p != g and draw(st.booleans())))
                     for g in range(count))
        nodes.append(Node(f"n{i}", draw(st.sampled_from([8000, 32000, 96000])), 262144, gpus))
    return nodes


@st.composite
def requests(draw, index: int) -> PodRequest:
    kind = draw(st.sampled_from(["whole", "share", "cpu"]))
    models = draw(st.sampled_from([ModelSelector(), ModelSelector.parse("A100*,H100*"), ModelSelector.parse("!T4"),
                                   ModelSelector.parse("T4*")]))
    return PodRequest(
        uid=f"u{index}", namespace="ml", name=f"p{index}",
        cpu_milli=draw(st.sampled_from([0, 1000, 4000, 16000])), memory_mib=draw(st.sampled_from([0, 4096, 65536])),
        gpus=draw(st.integers(1, 8)) if kind == "whole" else 0,
        gpu_milli=draw(st.integers(1, 999)) if kind == "share" else 0,
        gpu_memory_mib=draw(st.sampled_from([0, 1024, 8192, 20000])) if kind == "share" else 0,
        models=models if kind != "cpu" else ModelSelector(),
        sharing=draw(st.sampled_from(list(SharingNeed))) if kind == "share" else SharingNeed.ANY,
    )


@st.composite
def streams(draw):
    nodes = draw(clusters())
    steps = []
    for i in range(draw(st.integers(1, 40))):
        if steps and draw(st.integers(0, 4)) == 0:
            steps.append(("release", draw(st.integers(0, i))))
        else:
            steps.append(("arrive", draw(requests(i))))
    return nodes, draw(st.sampled_from(sorted(POLICIES))), steps


def check_books(engine: Engine) -> None:
    state = engine.state
    rows = state.live_rows()
    assert (state.free_milli[rows] >= 0).all() and (state.free_milli[rows] <= 1000).all()
    assert (state.free_memory[rows] >= 0).all() and (state.free_memory[rows] <= state.gpu_memory[rows]).all()
    assert (state.cpu_free[rows] >= 0).all() and (state.mem_free[rows] >= 0).all()
    used_milli = np.zeros_like(state.free_milli)
    holders: dict[tuple[int, int], list] = {}
    for alloc in engine.allocations.values():
        row = state.index[alloc.node]
        spec = state.specs[row]
        for slot in alloc.slots:
            used_milli[row, slot] += alloc.milli
            holders.setdefault((row, slot), []).append(alloc)
            gpu = spec.gpus[slot]
            if alloc.share:
                assert gpu.sharing is not Sharing.EXCLUSIVE, "a share on an exclusive GPU"
    for allocs in holders.values():
        if any(not a.share for a in allocs):
            assert len(allocs) == 1, "a whole GPU shared"
    expected_free = np.where(state.present, 1000 - used_milli, 0)
    assert (state.free_milli[rows] == expected_free[rows]).all(), "arrays drifted from the allocations"


def run_stream(nodes, policy, steps, *, on_step=None) -> Engine:
    engine = Engine(nodes, settings=EngineSettings(policy=policy, mix_refresh_every=4))
    names = [n.name for n in nodes]
    arrived: list[PodRequest] = []
    for kind, value in steps:
        if kind == "release":
            if arrived:
                engine.release(arrived[value % len(arrived)].uid)
        else:
            request = value
            arrived.append(request)
            answer = engine.filter(request, names)
            scored = [(s, n) for n, s in engine.scores(request, answer.passed) if s is not None]
            assert {n for _, n in scored} == set(answer.passed), "scores and filter disagree"
            # prioritize right after filter reuses the filter's work: it must equal a fresh computation
            fresh = dict(engine.scores(request, [*reversed(answer.passed), "not-a-node"]))
            assert all(fresh[n] == s for s, n in scored), "reused scores differ from fresh ones"
            if scored:
                best = max(scored, key=lambda sn: (sn[0], [-ord(c) for c in sn[1]]))[1]
                alloc = engine.bind(request.uid, request.namespace, request.name, best)
                assert engine.bind(request.uid, request.namespace, request.name, best) == alloc, "bind not idempotent"
                spec = engine.state.specs[engine.state.index[best]]
                for slot in alloc.slots:
                    assert request.models.matches(spec.gpus[slot].model), "placed on an excluded model"
                    assert spec.gpus[slot].healthy and not spec.gpus[slot].mig_enabled
            else:
                before = state_view(engine)
                for name in names:
                    try:
                        engine.bind(request.uid, request.namespace, request.name, name)
                        raise AssertionError("bound a pod that fits nowhere")
                    except BindRejected:
                        pass
                assert state_view(engine) == before, "a refused bind changed the books"
        check_books(engine)
        if on_step:
            on_step(engine)
    return engine


@given(streams())
def test_random_streams_never_break_the_books(stream):
    run_stream(*stream)


@given(streams())
def test_releasing_everything_restores_the_empty_cluster(stream):
    nodes, policy, steps = stream
    engine = run_stream(nodes, policy, steps)
    for uid in list(engine.allocations):
        engine.release(uid)
    assert state_view(engine)["nodes"] == state_view(Engine(nodes))["nodes"]
