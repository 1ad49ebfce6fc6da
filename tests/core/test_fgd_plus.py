"""fgd-plus and its terms: stranded GPU (CPU), model pressure, the shared fragmentation reduction."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core import filters, scarcity, stranding
from scheduler.core import fragmentation as frag
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.policies import POLICIES, PolicyContext, fgd_plus, fgd_plus_inputs
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState, Grant
from scheduler.core.workload import TaskType, Workload
from tests.builders import node, pod

ANY = ModelSelector()
T4_ONLY = ModelSelector.any_of(["Tesla-T4"])


def tasks_for(state: ClusterState, types: dict[TaskType, int]) -> frag.TaskMatrix:
    return frag.task_matrix(state, Workload.of(Counter(types), coverage=1.0))


def one_node(gpus: int = 4, cpu: int = 32000) -> ClusterState:
    return ClusterState([node("n").gpus(gpus, sharing="mps").cpu(cpu).build()])


# --- stranding: S = Σ q_m · max(0, U − C / ρ_m) -------------------------------------------------

def test_cpu_demand_groups_gpu_types_by_cpu_per_gpu_and_weights_them_by_gpu_demand():
    tasks = tasks_for(one_node(), {
        TaskType(4000, 1000, 1, ANY): 1,    # ρ = 4, demand 1000
        TaskType(8000, 1000, 2, ANY): 1,    # ρ = 4, demand 2000
        TaskType(1000, 500, 1, ANY): 2,     # ρ = 2, demand 1000
        TaskType(2000, 0, 0, ANY): 5,       # CPU-only: no GPU demand
    })
    demand = stranding.cpu_demand(tasks)
    assert demand.ratio.tolist() == [2.0, 4.0]
    assert demand.weight.tolist() == pytest.approx([0.25, 0.75])


@pytest.mark.parametrize(("free_milli", "free_cpu", "expected"), [
    (4000, 16000, 0.0),      # CPU for all four GPUs at ρ = 4
    (4000, 8000, 2000.0),    # CPU for two: the other two are stranded
    (4000, 0, 4000.0),       # no CPU: every free GPU stranded
    (1000, 64000, 0.0),
], ids=["enough", "half", "none", "plenty"])
def test_stranded_gpu_with_one_cpu_ratio(free_milli, free_cpu, expected):
    demand = stranding.CpuDemand(np.array([4.0]), np.array([1.0]))
    assert stranding.stranded(np.array([free_milli]), np.array([free_cpu]), demand).tolist() == [expected]


def test_stranded_gpu_averages_the_ratios_by_their_share_of_demand():
    demand = stranding.CpuDemand(np.array([2.0, 4.0]), np.array([0.25, 0.75]))
    # U = 4000, C = 8000: ρ = 2 serves 4000 (0 stranded), ρ = 4 serves 2000 (2000 stranded)
    assert stranding.stranded(np.array([4000]), np.array([8000]), demand).tolist() == [1500.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8000), st.integers(0, 128_000)), min_size=1, max_size=12),
       st.integers(0, 8000), st.integers(0, 64_000),
       st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 12.5, 64.0]), min_size=1, max_size=5, unique=True))
def test_the_stranding_a_placement_adds_is_after_minus_before_to_the_bit(nodes, milli, cpu, ratios):
    demand = stranding.CpuDemand(np.array(sorted(ratios)), np.full(len(ratios), 1 / len(ratios)))
    free = np.array([u for u, _ in nodes], np.int64)
    cpu_free = np.array([c for _, c in nodes], np.int64)
    two_calls = (stranding.stranded(free - milli, cpu_free - cpu, demand)
                 - stranding.stranded(free, cpu_free, demand))
    assert stranding.added(free, cpu_free, milli, cpu, demand).tobytes() == two_calls.tobytes()
    with np.errstate(divide="ignore", invalid="ignore"):  # the module doc's S, written out
        servable = np.where(demand.ratio > 0, cpu_free[:, None] / demand.ratio, np.inf)
    written_out = np.maximum(0.0, free[:, None] - servable) @ demand.weight
    assert stranding.stranded(free, cpu_free, demand).tobytes() == written_out.tobytes()


def test_no_gpu_demand_strands_nothing():
    tasks = tasks_for(one_node(), {TaskType(2000, 0, 0, ANY): 1})
    demand = stranding.cpu_demand(tasks)
    assert stranding.stranded(np.array([4000]), np.array([0]), demand).tolist() == [0.0]


# --- how much stranding counts: relevance(σ), σ = C / (G · ρ̄) ------------------------------------

def test_cpu_slack_is_the_clusters_cpu_over_what_the_gpu_pods_would_take():
    demand = stranding.CpuDemand(np.array([2.0, 4.0]), np.array([0.25, 0.75]))  # ρ̄ = 0.5 + 3 = 3.5
    # 8 GPUs (8000 milli) filled at 3.5 CPU milli per milli-GPU take 28000; the cluster has 42000
    assert stranding.cpu_slack(42000, 8000, demand) == pytest.approx(1.5)
    assert stranding.cpu_slack(42000, 8000, stranding.CpuDemand(np.zeros(0), np.zeros(0))) == float("inf")


def test_the_memoised_slack_follows_node_capacity_not_grants():
    state = ClusterState([node("a").gpus(4).cpu(32000).build(), node("b").gpus(4).cpu(32000).build()])
    tasks = frag.task_matrix(state, gpu_pods_needing_cpu())
    ctx = PolicyContext()
    fresh = lambda: stranding.cluster_slack(state, stranding.cpu_demand(tasks))  # noqa: E731
    assert fgd_plus_inputs.cpu_slack(state, ctx, tasks) == pytest.approx(fresh()) == pytest.approx(2.0)
    state.apply(0, Grant((0,), 1000, (0,), 16000, 0))  # a grant moves free CPU, not σ
    assert fgd_plus_inputs.cpu_slack(state, ctx, tasks) == pytest.approx(2.0)
    state.replace_node(1, node("b").gpus(4).cpu(16000).build())  # a node's capacity does
    assert fgd_plus_inputs.cpu_slack(state, ctx, tasks) == pytest.approx(fresh()) == pytest.approx(1.5)
    state.remove_node(1)
    assert fgd_plus_inputs.cpu_slack(state, ctx, tasks) == pytest.approx(fresh()) == pytest.approx(2.0)


@pytest.mark.parametrize(("slack", "expected"), [
    (0.5, 0.0), (0.99, 0.0),          # CPU short even for the GPU pods: stranding is unavoidable
    (1.0, 1.0), (1.6, 1.0), (1.75, 1.0),  # tight but sufficient (openb: 1.6)
    (1.875, 0.5),                          # the ramp down
    (2.0, 0.0), (2.1, 0.0), (5.6, 0.0), (float("inf"), 0.0),  # to spare (PAI 2020: 2.0, spot 2026: 5.6)
], ids=str)
def test_relevance_of_the_stranding_term(slack, expected):
    assert stranding.relevance(slack) == pytest.approx(expected)


@given(a=st.floats(1.0, 100.0), b=st.floats(1.0, 100.0))
def test_relevance_is_a_weight_that_never_grows_with_more_cpu_once_cpu_suffices(a, b):
    low, high = sorted((a, b))
    assert 0.0 <= stranding.relevance(high) <= stranding.relevance(low) <= 1.0


def scores_by_node(policy: str, nodes, request, workload) -> dict[str, float]:
    return dict(ranked(policy, nodes, request, workload))


def test_where_cpu_is_short_even_for_the_gpu_pods_the_terms_drop_the_stranding_term():
    # σ = 30 cores / (8 GPUs · 4 cores) ≈ 0.94. A 4-core pod on "tight" strands 1000 milli-GPU
    # (10 cores serve 2.5 GPUs, 6 serve 1.5); on "roomy" none. The constant weight prefers roomy;
    # fgd-plus scores both as FGD does (neither loses a type): with no model constraint, it is FGD.
    nodes = [node("tight").gpus(4).cpu(10000).build(), node("roomy").gpus(4).cpu(20000).build()]
    request = pod("cpu-job").cpu("4").request()
    fixed = scores_by_node("fgd-plus-fixed", nodes, request, gpu_pods_needing_cpu())
    assert fixed["roomy"] - fixed["tight"] >= 1
    adaptive = scores_by_node("fgd-plus-terms", nodes, request, gpu_pods_needing_cpu())
    assert adaptive == scores_by_node("fgd", nodes, request, gpu_pods_needing_cpu())
    assert int(adaptive["roomy"]) == int(adaptive["tight"])


def test_where_cpu_is_tight_but_sufficient_the_terms_keep_the_tuned_weight():
    # σ = 48 cores / (8 GPUs · 4 cores) = 1.5: relevance 1, the same scores as the constant weight
    nodes = [node("tight").gpus(4).cpu(16000).build(), node("roomy").gpus(4).cpu(32000).build()]
    request = pod("cpu-job").cpu("8").request()
    adaptive = scores_by_node("fgd-plus-terms", nodes, request, gpu_pods_needing_cpu())
    assert adaptive == scores_by_node("fgd-plus-fixed", nodes, request, gpu_pods_needing_cpu())
    assert adaptive["roomy"] - adaptive["tight"] >= 1


@pytest.mark.parametrize("request_", [pod("share").share(300).cpu("1").request(), pod("whole").gpus(2).cpu("2").request(),
                                      pod("cpu-only").cpu("1").request()], ids=["share", "whole", "cpu-only"])
def test_with_nothing_to_add_fgd_plus_is_fgd_itself(request_):
    # σ = 3 · 8 cores / (12 GPUs · 4 cores) = 0.5: no CPU weight; no pod of M is tied to a model
    nodes = [node(f"n{i}").gpus(4, sharing="mps").cpu(8000).build() for i in range(3)]
    assert scores_by_node("fgd-plus", nodes, request_, gpu_pods_needing_cpu()) == \
        scores_by_node("fgd", nodes, request_, gpu_pods_needing_cpu())


# --- scarcity: φ_X, how contested model X is -----------------------------------------------------

def mixed_cluster(a100_nodes: int, t4_nodes: int) -> ClusterState:
    return ClusterState([node(f"a{i}").gpus(4, sharing="mps").build() for i in range(a100_nodes)]
                        + [node(f"t{i}").gpus(4, model="Tesla-T4", sharing="mps").build() for i in range(t4_nodes)])


def test_model_pressure_is_zero_when_no_pod_is_constrained():
    state = mixed_cluster(3, 1)
    tasks = tasks_for(state, {TaskType(1000, 1000, 1, ANY): 1})
    assert scarcity.model_pressure(scarcity.free_by_model(state), tasks).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("types", "expected"), [
    ({TaskType(1000, 1000, 1, ANY): 1, TaskType(2000, 0, 0, ANY): 1}, False),
    ({TaskType(1000, 1000, 1, ANY): 1, TaskType(1000, 500, 1, T4_ONLY): 1}, True),
], ids=["free", "t4-only"])
def test_a_workload_is_constrained_when_a_gpu_type_may_not_use_some_model(types, expected):
    assert scarcity.constrained(tasks_for(mixed_cluster(1, 1), types)) is expected


def test_model_pressure_by_hand():
    # free: A100 12000, T4 4000 (16000 in all); demand: half unconstrained, half T4-only.
    # unconstrained: 0.5 · 16000 / 16000 = 0.5 on both models; T4-only: 0.5 · 16000 / 4000 = 2 on T4.
    # φ_A100 = 0.5, φ_T4 = 2.5; minus the minimum: [0, 2].
    state = mixed_cluster(3, 1)
    tasks = tasks_for(state, {TaskType(1000, 1000, 1, ANY): 1, TaskType(1000, 1000, 1, T4_ONLY): 1})
    phi = scarcity.model_pressure(scarcity.free_by_model(state), tasks)
    a100, t4 = state.models.index("NVIDIA-A100-SXM4-80GB"), state.models.index("Tesla-T4")
    assert (phi[a100], phi[t4], phi[-1]) == pytest.approx((0.0, 2.0, 0.0))


# --- fragmentation.reduction: the patched what-if equals recomputing the node ---------------------

@settings(max_examples=150, deadline=None)
@given(used=st.lists(st.sampled_from([0, 0, 1000, 200, 500, 750]) | st.integers(0, 1000), min_size=4, max_size=4),
       share=st.integers(1, 999), gpus=st.integers(0, 2), cpu=st.integers(0, 8000),
       mix=st.lists(st.tuples(st.sampled_from([0, 250, 500, 1000]), st.integers(1, 2), st.integers(0, 12000)),
                    min_size=1, max_size=4))
def test_reduction_equals_the_fragmentation_before_minus_after(used, share, gpus, cpu, mix):
    state = one_node(cpu=16000)
    for slot, milli in enumerate(used):
        if milli:
            state.apply(0, Grant((slot,), milli, (0,), 0, 0))
    tasks = tasks_for(state, {TaskType(c, m, n if m == 1000 else (1 if m else 0), ANY): 1 for m, n, c in mix})
    rows = np.array([0])
    before = frag.node_fragmentation(state, rows, tasks)[0]
    cpu = min(cpu, int(state.cpu_free[0]))
    for request_share, request_gpus in ((share, 0), (0, gpus)):
        fits = state.free_milli[0] >= (request_share or 1000) if (request_share or request_gpus) else np.ones(
            state.free_milli.shape[1], bool)
        fits = fits & state.usable[0]
        if request_gpus and fits.sum() < request_gpus:
            continue
        got = frag.reduction(state, rows, fits[None, :], tasks, cpu_milli=cpu, gpus=request_gpus,
                             share_milli=request_share)[0]
        for slot in np.flatnonzero(fits):
            after_state = state.copy()
            taken = tuple(np.flatnonzero(fits)[:request_gpus]) if request_gpus else (
                (int(slot),) if request_share else ())
            after_state.apply(0, Grant(taken, request_share or 1000, (0,) * len(taken), cpu, 0))
            after = frag.node_fragmentation(after_state, rows, tasks)[0]
            assert got[slot] == pytest.approx(before - after)


# --- the policy ----------------------------------------------------------------------------------

def gpu_pods_needing_cpu() -> Workload:
    """M: one whole GPU with 4 cores, the shape that needs CPU left beside its GPU."""
    return Workload.of_pods([pod("w").gpus(1).cpu("4").request()])


def ranked(policy: str, nodes, request, workload) -> list[tuple[str, float]]:
    engine = Engine(nodes, settings=EngineSettings(policy=policy), workload=workload)
    return sorted(((n, s) for n, s in engine.scores(request, [n.name for n in nodes]) if s is not None),
                  key=lambda item: -item[1])


def test_a_cpu_only_pod_is_kept_off_the_cpu_its_gpus_will_need():
    # "tight" has 4 free GPUs and 16 cores: taking 8 cores leaves CPU for two of its GPUs only.
    # FGD sees no change on either node (every type still fits); the terms see 2000 milli-GPU stranded.
    # (σ = 40 cores / (8 GPUs · 4 cores) = 1.25: the stranding term counts in full.)
    nodes = [node("tight").gpus(4).cpu(16000).build(), node("roomy").gpus(4).cpu(24000).build()]
    request = pod("cpu-job").cpu("8").request()
    fgd = dict(ranked("fgd", nodes, request, gpu_pods_needing_cpu()))
    assert fgd["tight"] == fgd["roomy"]
    plus = ranked("fgd-plus-terms", nodes, request, gpu_pods_needing_cpu())
    assert plus[0][0] == "roomy" and plus[0][1] - plus[1][1] >= 1


def test_an_unconstrained_pod_leaves_the_scarce_model_to_the_pods_that_need_it():
    nodes = [node("a100").gpus(4).build(), node("t4").gpus(4, model="Tesla-T4").build()]
    workload = Workload.of_pods([pod("any").gpus(1).request(), pod("t4-only").gpus(1).models("Tesla-T4").request()])
    request = pod("p").gpus(1).request()
    assert ranked("fgd-plus-terms", nodes, request, workload)[0][0] == "a100"
    assert ranked("fgd-models", nodes, request, workload)[0][0] == "a100"


def model_pressure_charged(policy: str, nodes, request, workload) -> np.ndarray:
    """What the policy's explain says the pod is charged for the models of each fitting node."""
    state = ClusterState(nodes)
    fit = filters.fit(state, request, np.arange(state.size))
    breakdown = POLICIES[policy].explain(state, request, fit.rows[fit.fits], fit.slot_fit[fit.fits],
                                         PolicyContext(workload=workload))
    return next(t.values for t in breakdown.inputs if "model pressure" in t.name)


@pytest.mark.parametrize(("unconstrained", "charged"), [(1, True), (7, False)], ids=["over-asked", "under-asked"])
def test_fgd_plus_charges_model_pressure_only_while_a_pool_is_over_asked(unconstrained, charged):
    # Three A100 nodes and one T4 node: T4 holds a quarter of the free GPU. One T4-only pod beside
    # one unconstrained pod asks half of M's demand of it, φ_T4 = 0.5 · 4 = 2: protect the pool.
    # Beside seven, an eighth, φ_T4 = 0.5 < 1: the pool absorbs its share, nothing is charged.
    nodes = [node(f"a{i}").gpus(4).cpu(48000).build() for i in range(3)] + \
        [node("t4").gpus(4, model="Tesla-T4").cpu(48000).build()]
    workload = Workload.of_pods([pod("t4-only").gpus(1).models("Tesla-T4").request()]
                                + [pod(f"any{i}").gpus(1).request() for i in range(unconstrained)])
    request = pod("p").gpus(1).request()
    assert bool(model_pressure_charged("fgd-plus-terms", nodes, request, workload).any()) is charged
    assert model_pressure_charged("fgd-plus-fixed", nodes, request, workload).any()  # ungated: always


@pytest.mark.parametrize("name", [p.name for p in fgd_plus.POLICIES])
def test_memoised_scores_equal_a_fresh_computation(name):
    nodes = [node(f"n{i}").gpus(4, sharing="mps").cpu(24000 + 8000 * i).build() for i in range(6)]
    engine = Engine(nodes, settings=EngineSettings(policy=name))
    names = [n.name for n in nodes]
    for i, request in enumerate([pod(f"p{i}").share(250 + 50 * i).cpu("2").request() for i in range(12)]):
        engine.scores(request, names)
        engine.filter(request, names)
        engine.bind(request.uid, "ml", request.name, names[i % len(names)])
        cached = [s for _, s in engine.scores(request, names) if s is not None]
        fit = filters.fit(engine.state, request, np.arange(len(names)))
        fresh = POLICIES[name].score(engine.state, request, fit.rows[fit.fits], fit.slot_fit[fit.fits],
                                     PolicyContext(workload=engine.workload()))
        assert cached == pytest.approx(fresh.tolist())


def test_the_node_order_is_fixed_by_the_seed_and_changes_with_it():
    state = ClusterState([node(f"n{i}").gpus(1).build() for i in range(20)])
    first = fgd_plus_inputs.node_order(state, PolicyContext(seed=7))
    assert np.array_equal(first, fgd_plus_inputs.node_order(state, PolicyContext(seed=7)))
    assert not np.array_equal(first, fgd_plus_inputs.node_order(state, PolicyContext(seed=8)))
    assert ((first[:20] >= 0) & (first[:20] < 1)).all() and len(set(first[:20].tolist())) == 20


def test_the_tie_break_stays_below_one_score_point():
    # Integer bins decide; packing (≤ 0.5) and the order (< 0.001) only break ties inside a bin.
    nodes = [node(f"n{i}").gpus(2).build() for i in range(8)]
    scores = [s for _, s in ranked("fgd-bestfit", nodes, pod("p").gpus(1).request(), None)]
    assert max(scores) - min(scores) < 1


@pytest.mark.parametrize("terms", [dict(cpu=-1.0), dict(models=-0.1), dict(packing=0.6)], ids=str)
def test_invalid_terms_are_refused(terms):
    with pytest.raises(ValueError, match="invalid terms"):
        fgd_plus.Terms(**terms)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 1000), st.booleans()), min_size=1, max_size=30))
def test_the_tracked_free_capacity_per_model_equals_a_full_recount(steps):
    nodes = [node(f"a{i}").gpus(2, sharing="mps").build() for i in range(3)] + [
        node(f"t{i}").gpus(4, model="Tesla-T4", sharing="mps").build() for i in range(3)]
    engine = Engine(nodes)
    tracked = scarcity.FreeByModel()
    bound: list[str] = []
    for i, (row, milli, release) in enumerate(steps):
        if release and bound:
            engine.release(bound.pop(0))
        else:
            request = pod(f"p{i}").share(milli).request() if milli < 1000 else pod(f"p{i}").gpus(1).request()
            if engine.filter(request, [nodes[row].name]).passed:
                engine.bind(request.uid, "ml", request.name, nodes[row].name)
                bound.append(request.uid)
        if i == len(steps) // 2:
            engine.upsert_node(node("late").gpus(1, model="Tesla-T4").build())
        assert tracked.of(engine.state).tolist() == scarcity.free_by_model(engine.state).tolist()
