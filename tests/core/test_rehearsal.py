"""The rehearsal that decides where fgd-plus's terms replace FGD's order, and fgd-plus following it."""

from collections import Counter

import numpy as np
import pytest

from scheduler.core import filters, rehearsal
from scheduler.core.policies import PolicyContext, fgd, fgd_plus
from scheduler.core.rehearsal_board import Rehearsals, Verdict
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState, Grant
from scheduler.core.workload import TaskType, Workload, WorkloadMix
from tests.builders import node, pod

ANY = ModelSelector()
CPU_HEAVY = Workload.of(Counter({TaskType(4000, 1000, 1, ANY): 6, TaskType(16000, 0, 0, ANY): 4,
                                 TaskType(8000, 500, 1, ANY): 4, TaskType(24000, 1000, 2, ANY): 2}), coverage=1.0)
T4_TIED = Workload.of(Counter({TaskType(4000, 1000, 1, ModelSelector.any_of(["T4"])): 3, TaskType(6000, 500, 1, ANY): 6,
                               TaskType(2000, 1000, 2, ANY): 3, TaskType(8000, 0, 0, ANY): 3}), coverage=1.0)


def two_pools(cpu8: int, cpu2: int) -> list:
    return ([node(f"a{i}").gpus(8, model="G2").cpu(cpu8).build() for i in range(12)]
            + [node(f"b{i}").gpus(2, model="T4").cpu(cpu2).build() for i in range(16)])


def gpus_of(nodes) -> int:
    return sum(len(n.gpus) for n in nodes)


# --- the miniature ------------------------------------------------------------------------------

def test_a_miniature_keeps_the_node_shapes_in_proportion_and_the_rare_ones():
    nodes = ([node(f"big{i}").gpus(8).cpu(96_000).build() for i in range(100)]
             + [node(f"small{i}").gpus(2, model="T4").cpu(32_000).build() for i in range(60)]
             + [node("odd").gpus(4, model="P100").cpu(48_000).build()])
    small = rehearsal.miniature(rehearsal.census(nodes), 230)
    kinds = Counter(n.gpus[0].model for n in small)
    assert gpus_of(small) <= 230
    # 100, 60 and 1 nodes scaled by 230 / 924 GPUs: 24.9, 14.9 and 0.25. Rounded down (220 GPUs), then
    # the P100 node first, so its pool is not rounded away, then T4 by the larger remainder; 8 more
    # GPUs would pass 230.
    assert (kinds["NVIDIA-A100-SXM4-80GB"], kinds["T4"], kinds["P100"]) == (24, 15, 1)
    assert len({n.name for n in small}) == len(small)


def test_a_cluster_smaller_than_the_miniature_is_played_whole():
    nodes = two_pools(96_000, 32_000)
    small = rehearsal.miniature(rehearsal.census(nodes), 1_600)
    assert sorted(rehearsal.census(small)) == sorted(rehearsal.census(nodes))


def test_the_census_ignores_names_order_health_and_availability():
    healthy = [node("a").gpus(4).cpu(64_000).build(), node("b").gpus(2, model="T4").build()]
    changed = [node("z").gpus(2, model="T4").unavailable("agent silent").build(),
               node("y").gpus(3).gpus(1, healthy=False).cpu(64_000).build()]
    assert rehearsal.census(healthy) == rehearsal.census(changed)
    assert rehearsal.census(healthy) != rehearsal.census([*healthy, node("c").gpus(4).cpu(64_000).build()])


# --- the verdict ----------------------------------------------------------------------------------

def test_a_rehearsal_is_a_pure_function_of_the_census_the_workload_and_the_seed():
    shapes = rehearsal.census(two_pools(80_000, 20_000))
    first = rehearsal.rehearse(shapes, CPU_HEAVY, fgd_plus.FGD_PLUS_TERMS, fgd.POLICY, seed=1)
    again = rehearsal.rehearse(rehearsal.census(reversed(two_pools(80_000, 20_000))), CPU_HEAVY,
                               fgd_plus.FGD_PLUS_TERMS, fgd.POLICY, seed=1)
    assert first == again
    assert len(first.candidate) == rehearsal.REPLICAS and first.gpus == 128
    assert first != rehearsal.rehearse(shapes, CPU_HEAVY, fgd_plus.FGD_PLUS_TERMS, fgd.POLICY, seed=2)


def test_a_fill_places_until_130_percent_has_arrived_without_over_allocating():
    nodes = two_pools(80_000, 20_000)
    left = rehearsal.fill(nodes, CPU_HEAVY, fgd.POLICY, seed=3)
    assert 0.0 <= left < 100.0  # ClusterState.apply raises on any grant beyond a GPU's or node's capacity


def test_a_workload_without_gpu_pods_plays_nothing():
    cpu_only = Workload.of(Counter({TaskType(4000, 0, 0, ANY): 1}), coverage=1.0)
    verdict = rehearsal.rehearse(rehearsal.census(two_pools(80_000, 20_000)), cpu_only,
                                 fgd_plus.FGD_PLUS_TERMS, fgd.POLICY, seed=1)
    assert verdict.gpus == 0 and verdict.delta == 0.0 and not verdict.candidate_wins


@pytest.mark.parametrize(("candidate", "reference", "wins"), [
    ((3.0, 3.5), (4.0, 4.0), True),     # Δ −0.75 ± 0.25
    ((4.0, 4.0), (4.0, 4.0), False),    # a tie keeps FGD
    ((3.0, 4.5), (4.0, 4.0), False),    # Δ −0.25 ± 0.75: a near tie keeps FGD
    ((5.0, 3.0), (4.0, 3.5), False)],   # Δ +0.25
    ids=["clear win", "tie", "near tie", "loss"])
def test_the_candidate_decides_only_where_it_wins_beyond_the_rehearsals_noise(candidate, reference, wins):
    verdict = rehearsal.Verdict(candidate, reference, 8)
    assert verdict.candidate_wins is wins
    assert verdict.standard_error == pytest.approx(np.std(np.subtract(candidate, reference), ddof=1) / np.sqrt(2))


# --- fgd-plus follows its rehearsal -----------------------------------------------------------

def half_full(nodes) -> ClusterState:
    """Every other node with some GPU and CPU taken, so that the orders have something to differ on."""
    state = ClusterState(nodes)
    ctx = PolicyContext(workload=CPU_HEAVY, seed=0)
    for row in range(0, state.size, 2):
        request = pod(f"p{row}").gpus(1).cpu("12").request()
        fit = filters.fit(state, request, np.array([row]))
        slots = fgd.POLICY.pick(state, request, row, fit.slot_fit[0], ctx)
        state.apply(row, Grant(slots, 1000, tuple(int(state.gpu_memory[row, s]) for s in slots), 12_000, 0))
    return state


def scores(policy, state: ClusterState, workload: Workload, seed: int) -> np.ndarray:
    request = pod("q").gpus(1).cpu("4").request()
    fit = filters.fit(state, request, np.arange(state.size))
    rows = np.flatnonzero(fit.fits)
    return policy.node_scores(state, request, rows, fit.slot_fit[rows], PolicyContext(workload=workload, seed=seed))


@pytest.mark.parametrize(("cpu8", "cpu2", "workload", "seed", "terms_win"), [
    (128_000, 16_000, CPU_HEAVY, 1, True),    # rehearsal Δ −4.69 ± 0.90 pp
    (80_000, 20_000, T4_TIED, 2, False),      # rehearsal Δ +0.20 ± 0.37 pp
], ids=["terms win", "fgd wins"])
def test_fgd_plus_scores_as_the_rehearsals_winner(cpu8, cpu2, workload, seed, terms_win):
    nodes = two_pools(cpu8, cpu2)
    verdict = rehearsal.rehearse(rehearsal.census(nodes), workload, fgd_plus.FGD_PLUS_TERMS, fgd.POLICY, seed=seed)
    assert verdict.candidate_wins is terms_win
    state = half_full(nodes)
    generation = state.generation
    chosen = scores(fgd_plus.FGD_PLUS, state, workload, seed)
    terms, plain = scores(fgd_plus.FGD_PLUS_TERMS, state, workload, seed), scores(fgd.POLICY, state, workload, seed)
    assert not np.array_equal(terms, plain)  # the two orders differ here, so the check below can fail
    assert np.array_equal(chosen, terms if terms_win else plain)
    assert state.generation == generation  # the rehearsal played on its own miniature, never on the books


def test_explain_says_what_the_rehearsal_found():
    state = half_full(two_pools(128_000, 16_000))
    request = pod("q").gpus(1).cpu("4").request()
    fit = filters.fit(state, request, np.arange(state.size))
    rows = np.flatnonzero(fit.fits)
    breakdown = fgd_plus.FGD_PLUS.node_terms(state, request, rows, fit.slot_fit[rows],
                                             PolicyContext(workload=CPU_HEAVY, seed=1))
    assert any(t.name == "rehearsal on 128 GPUs, 4 fills: fgd-plus-terms leaves -4.69 ± 0.90 pp of the GPU "
               "unallocated against fgd, so fgd-plus-terms decides"
               for t in breakdown.inputs)


# --- the server's board: played off the scheduling path -----------------------------------------

def test_the_board_hands_back_the_last_verdict_while_a_new_one_is_wanted():
    board = Rehearsals()
    first, second = Verdict((1.0,), (2.0,), 8), Verdict((3.0,), (2.0,), 8)
    assert board.ask("m1", lambda: first) is None  # nothing settled yet: FGD's order
    key, play = board.wanted()
    assert board.wanted() is None  # handed out once
    board.settle(key, play())
    assert board.ask("m1", lambda: second) is first
    assert board.ask("m2", lambda: second) is first  # the previous workload's verdict stands in
    key, play = board.wanted()
    board.settle(key, play())
    assert board.ask("m2", lambda: first) is second and board.settled == 2


def test_the_board_keeps_a_bounded_number_of_verdicts():
    board = Rehearsals()
    for i in range(Rehearsals.KEEP + 5):
        board.settle(i, Verdict((0.0,), (0.0,), 1))
    assert board.settled == Rehearsals.KEEP
    assert board.ask(0, lambda: Verdict((), (), 0)) is not None and board.wanted() is not None  # 0 was dropped


def test_the_board_wants_only_the_latest_rehearsal_asked_for():
    board = Rehearsals()
    for mix in ("m1", "m2", "m3"):
        board.ask(mix, lambda: Verdict((), (), 0))
    key, _ = board.wanted()
    assert key == "m3" and board.wanted() is None


def test_with_a_board_fgd_plus_scores_as_fgd_until_its_rehearsal_is_settled():
    state = half_full(two_pools(128_000, 16_000))  # the terms win here (above)
    board = Rehearsals()
    request = pod("q").gpus(1).cpu("4").request()
    fit = filters.fit(state, request, np.arange(state.size))
    rows = np.flatnonzero(fit.fits)
    ctx = PolicyContext(workload=CPU_HEAVY, seed=1, rehearsals=board)

    def fgd_plus_scores():
        return fgd_plus.FGD_PLUS.node_scores(state, request, rows, fit.slot_fit[rows], ctx)

    assert np.array_equal(fgd_plus_scores(), scores(fgd.POLICY, state, CPU_HEAVY, 1))
    key, play = board.wanted()
    board.settle(key, play())
    assert np.array_equal(fgd_plus_scores(), scores(fgd_plus.FGD_PLUS_TERMS, state, CPU_HEAVY, 1))
    assert board.wanted() is None  # the same workload and cluster ask for nothing more


# --- memory: not in M, but asked in the rehearsal --------------------------------------------------

def test_a_workload_keeps_the_mean_memory_of_each_shape():
    pods = [pod("a").gpus(1).cpu("4").memory("8Gi").request(), pod("b").gpus(1).cpu("4").memory("24Gi").request(),
            pod("c").cpu("2").memory("1Gi").request()]
    workload = Workload.of_pods(pods, coverage=1.0)
    memory = dict(zip(workload.types, workload.memory.tolist(), strict=True))
    assert memory == {TaskType.of(pods[0]): 16 * 1024, TaskType.of(pods[2]): 1024}


def test_the_mix_keeps_the_mean_memory_it_observed():
    mix = WorkloadMix()
    for i, memory in enumerate(("2Gi", "6Gi")):
        mix.observe(pod(f"p{i}").share(500).cpu("1").memory(memory).request())
    assert mix.snapshot().memory.tolist() == [4 * 1024]


def test_the_rehearsals_pods_ask_their_types_memory():
    # One 4-GPU node with 64 GiB: GPU pods asking 32 GiB each fit two to the node, so half its GPUs
    # stay unallocated; the same pods asking no memory fill it.
    nodes = [node(f"n{i}").gpus(4).cpu(64_000).memory(64 * 1024).build() for i in range(2)]
    shape = Counter({TaskType(1000, 1000, 1, ANY): 1})
    hungry = Workload.of(shape, coverage=1.0, memory_totals={TaskType(1000, 1000, 1, ANY): 32 * 1024})
    assert rehearsal.fill(nodes, hungry, fgd.POLICY, seed=1) == 50.0
    assert rehearsal.fill(nodes, Workload.of(shape, coverage=1.0), fgd.POLICY, seed=1) == 0.0
