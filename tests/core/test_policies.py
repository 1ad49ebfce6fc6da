"""Each policy on small hand-built clusters: which node wins, and the arithmetic behind it."""

import numpy as np
import pytest

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.policies import POLICIES, PolicyContext
from scheduler.core.policies import fgd as fgd_policy
from scheduler.core.state import Grant
from scheduler.core.workload import Workload
from tests.builders import node, pod


def scores(policy: str, nodes, request, *, taken=(), workload=None) -> dict[str, float]:
    engine = Engine(nodes, settings=EngineSettings(policy=policy), workload=workload)
    for row, slot, milli in taken:
        engine.state.apply(row, Grant((slot,), milli, (0,), 0, 0))
    return {n: s for n, s in engine.scores(request, [n.name for n in nodes]) if s is not None}


def winner(policy, nodes, request, **kwargs) -> str:
    result = scores(policy, nodes, request, **kwargs)
    return max(sorted(result), key=lambda n: result[n])


TWO = [node("busy").gpus(4, sharing="mps").build(), node("idle").gpus(4, sharing="mps").build()]
BUSY_HALF = ((0, 0, 1000), (0, 1, 1000))   # busy: 2 of 4 GPUs taken


@pytest.mark.parametrize(("policy", "expected"), [
    ("binpack", "busy"), ("spread", "idle"), ("bestfit", "busy"), ("fgd", "busy"),
])
def test_whole_gpu_goes_where_each_policy_says(policy, expected):
    assert winner(policy, TWO, pod("p").gpus(1).request(), taken=BUSY_HALF) == expected


def test_binpack_arithmetic():
    # busy: (2000 used + 1000) / 4000 = 0.75 -> 750000; cpu 0 + 0 -> +0; idle: 1000 / 4000 -> 250000
    result = scores("binpack", TWO, pod("p").gpus(1).request(), taken=BUSY_HALF)
    assert result == {"busy": pytest.approx(750_000), "idle": pytest.approx(250_000)}


def test_bestfit_arithmetic():
    # busy: free (cpu 64000, gpu 2000) - (0, 1000) -> 100 * (1 - (0.5*64000/128000 + 0.5*1000/8000)) = 68.75 -> 68
    # idle: free gpu 4000 -> 100 * (1 - (0.25 + 0.5*3000/8000)) = 56.25 -> 56
    assert scores("bestfit", TWO, pod("p").gpus(1).request(), taken=BUSY_HALF) == {"busy": 68, "idle": 56}


def test_binpack_puts_a_share_on_the_snuggest_gpu():
    one = [node("n").gpus(3, sharing="mps").build()]
    engine = Engine(one, settings=EngineSettings(policy="binpack"))
    engine.state.apply(0, Grant((1,), 700, (0,), 0, 0))  # 300 left on GPU 1
    request = pod("p").share(300).request()
    engine.filter(request, ["n"])
    assert engine.bind(request.uid, "ml", "p", "n").slots == (1,)


def test_spread_puts_a_share_on_the_emptiest_gpu():
    engine = Engine([node("n").gpus(2, sharing="mps").build()], settings=EngineSettings(policy="spread"))
    engine.state.apply(0, Grant((0,), 200, (0,), 0, 0))
    request = pod("p").share(300).request()
    engine.filter(request, ["n"])
    assert engine.bind(request.uid, "ml", "p", "n").slots == (1,)


def test_fgd_keeps_whole_gpus_whole_for_a_whole_gpu_workload():
    # Workload: all 1-GPU pods. A 500-milli share on the node whose GPU is already half used
    # creates no new fragment; on the idle node it would break a whole GPU.
    nodes = [node("half").gpus(1, sharing="mps").build(), node("idle").gpus(1, sharing="mps").build()]
    workload = Workload.of_pods([pod("w").gpus(1).request()])
    result = scores("fgd", nodes, pod("p").share(500).request(), taken=((0, 0, 500),), workload=workload)
    # half: F 500 -> 0, Δ = -500 -> ⌊100·σ(0.5)⌋ = 62; idle: F 0 -> 500, Δ = +500 -> ⌊100·σ(-0.5)⌋ = 37
    assert result == {"half": 62, "idle": 37}


def test_fgd_memo_gives_the_same_scores_as_a_fresh_computation():
    nodes = [node(f"n{i}").gpus(4, sharing="mps").build() for i in range(6)]
    engine = Engine(nodes, settings=EngineSettings(policy="fgd"))
    names = [n.name for n in nodes]
    for i, request in enumerate([pod(f"p{i}").share(250 + 50 * i).request() for i in range(12)]):
        first = engine.scores(request, names)
        engine.filter(request, names)
        engine.bind(request.uid, "ml", request.name, names[i % len(names)])
        cached = engine.scores(request, names)
        fresh_ctx = PolicyContext(workload=engine.workload())
        rows = np.arange(len(names))
        from scheduler.core import filters
        fit = filters.fit(engine.state, request, rows)
        fresh = fgd_policy.score(engine.state, request, fit.rows[fit.fits], fit.slot_fit[fit.fits], fresh_ctx)
        assert [s for _, s in cached if s is not None] == fresh.tolist()
        assert first  # scored before the bind too


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_scores_only_fitting_nodes_and_picks_fitting_gpus(name):
    nodes = [node("a").gpus(2, sharing="mps").build(), node("b").gpus(2, model="Tesla-T4", sharing="mps").build(),
             node("c").build()]
    engine = Engine(nodes, settings=EngineSettings(policy=name))
    request = pod("p").share(400).models("A100*").request()
    result = dict(engine.scores(request, ["a", "b", "c"]))
    assert result["a"] is not None and result["b"] is None and result["c"] is None
    engine.filter(request, ["a"])
    alloc = engine.bind(request.uid, "ml", "p", "a")
    assert alloc.node == "a" and len(alloc.slots) == 1
