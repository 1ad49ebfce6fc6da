"""Inventories derived from the public traces: openb's GPU capacity, proportions kept, deterministic."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.traces import inventories
from simulator.traces.nodes import load_nodes
from tests.builders import node
from tests.simulator.conftest import TRACES, openb

OPENB_GPUS = 6212
DERIVED = [inventories.openb, inventories.pai2020, inventories.spot2026, inventories.cpu_halved,
           inventories.models_shuffled, inventories.helios, inventories.cpu_doubled,
           inventories.pai2020_cpu_halved, inventories.halved_and_shuffled, inventories.openb_even_cpu,
           inventories.pai2020_even_cpu, inventories.openb_even_cpu_085, inventories.openb_even_cpu_075,
           inventories.helios_cpu64, inventories.spot2026_cpu_halved, inventories.openb_split,
           inventories.openb_pai_mix]


@pytest.fixture(scope="module")
def traces():
    for f in inventories.TRACE_FILES:
        if not (TRACES / f).is_file():
            pytest.skip(f"needs the public traces in ../shared/traces ({f} not found)")
    openb("openb_node_list_gpu_node.csv")
    return TRACES


def shapes(nodes):
    return Counter(inventories.shape(n) for n in nodes)


@pytest.mark.parametrize("derive", DERIVED, ids=lambda f: f.__name__)
def test_every_inventory_has_openbs_gpu_capacity_to_within_one_server(traces, derive):
    gpus = inventories.gpu_count(derive(traces))
    # helios: 8-GPU servers only, so up to 7 GPUs short; the others round by single nodes of 1-8 GPUs
    assert OPENB_GPUS - 8 < gpus <= OPENB_GPUS


@pytest.mark.parametrize("derive", DERIVED, ids=lambda f: f.__name__)
def test_every_inventory_is_a_pure_function_of_the_traces(traces, derive):
    assert derive(traces) == derive(traces)


@pytest.mark.parametrize("derive", [inventories.pai2020, inventories.spot2026, inventories.helios],
                         ids=lambda f: f.__name__)
def test_foreign_pools_take_openbs_names_by_rank(traces, derive):
    pools = inventories.pools_by_size(derive(traces))
    reference = inventories.pools_by_size(inventories.openb(traces))
    assert pools == reference[:len(pools)]  # the largest pool is G2, the next T4, ... as in openb


def test_pai_keeps_its_cpu_per_gpu_shapes(traces):
    # PAI's 2-GPU P100 machines have 64 cores; after renaming by rank they play openb's T4 pool
    cores_per_gpu = {(s[1], s[2] // 1000 // s[1]) for s in shapes(inventories.pai2020(traces))}
    assert cores_per_gpu == {(2, 32), (2, 48), (8, 12)}


@pytest.mark.parametrize(("even", "base"), [(inventories.openb_even_cpu, inventories.openb),
                                             (inventories.pai2020_even_cpu, inventories.pai2020)],
                         ids=["openb", "pai2020"])
def test_even_cpu_keeps_the_clusters_cpu_and_gives_each_node_its_gpus_share(traces, even, base):
    spread, original = even(traces), base(traces)
    assert [n.gpus for n in spread] == [n.gpus for n in original]
    total = sum(n.cpu_milli for n in original)
    assert total - len(spread) < sum(n.cpu_milli for n in spread) <= total  # rounded down per node
    def spread_of(nodes):  # milli-cores per GPU, most minus least
        per_gpu = [n.cpu_milli / len(n.gpus) for n in nodes]
        return max(per_gpu) - min(per_gpu)
    assert spread_of(original) > 1000  # nodes with CPU to spare, and nodes without
    assert spread_of(spread) < 1  # every node its GPUs' share of the CPU, to the milli-core


def test_cpu_halved_changes_cpu_only(traces):
    base, halved = inventories.openb(traces), inventories.cpu_halved(traces)
    assert [n.cpu_milli // 2 for n in base] == [n.cpu_milli for n in halved]
    assert [n.gpus for n in base] == [n.gpus for n in halved]


def test_openb_split_keeps_gpus_models_and_cpu_in_nodes_of_at_most_four_gpus(traces):
    base, split = inventories.openb(traces), inventories.openb_split(traces)
    assert Counter(g.model for n in base for g in n.gpus) == Counter(g.model for n in split for g in n.gpus)
    assert sum(n.cpu_milli for n in split) == sum(n.cpu_milli for n in base) - sum(
        n.cpu_milli % 2 for n in base if len(n.gpus) == 8)  # halves rounded down
    assert max(len(n.gpus) for n in split) == 4
    assert len(split) == len(base) + sum(len(n.gpus) == 8 for n in base)
    assert all([g.index for g in n.gpus] == list(range(len(n.gpus))) for n in split)


def test_openb_pai_mix_is_half_each(traces):
    mix = inventories.openb_pai_mix(traces)
    from_openb = sum(len(n.gpus) for n in mix if n.name.startswith("openb-"))
    assert abs(from_openb - OPENB_GPUS // 2) <= 8 and abs(inventories.gpu_count(mix) - from_openb - OPENB_GPUS // 2) <= 8


def test_models_shuffled_keeps_node_shapes_and_nodes_per_model(traces):
    base, shuffled = inventories.openb(traces), inventories.models_shuffled(traces, seed=3)
    assert [(n.name, n.cpu_milli, len(n.gpus)) for n in base] == [(n.name, n.cpu_milli, len(n.gpus)) for n in shuffled]
    assert Counter(n.gpus[0].model for n in base) == Counter(n.gpus[0].model for n in shuffled)
    assert sum(a.gpus[0].model != b.gpus[0].model for a, b in zip(base, shuffled, strict=True)) > len(base) // 2


def test_models_shuffled_is_a_function_of_its_seed(traces):
    assert inventories.models_shuffled(traces, seed=1) == inventories.models_shuffled(traces, seed=1)
    assert inventories.models_shuffled(traces, seed=1) != inventories.models_shuffled(traces, seed=2)


@pytest.mark.parametrize("derive", [inventories.spot2026, inventories.helios], ids=lambda f: f.__name__)
def test_an_inventory_survives_the_openb_csv_round_trip(traces, tmp_path, derive):
    nodes = derive(traces)
    assert load_nodes(inventories.write_openb_csv(nodes, tmp_path / "nodes.csv")) == nodes


def test_scaling_keeps_proportions_and_renames():
    nodes = [node(f"big-{i}").gpus(8, model="X").build() for i in range(10)] + \
            [node(f"small-{i}").gpus(2, model="Y").build() for i in range(20)]  # 80 + 40 GPUs
    half = inventories.scaled(nodes, gpus=60, prefix="s")
    # 10 × 60/120 = 5 big (40 GPUs), 20 × 60/120 = 10 small (20 GPUs)
    assert shapes(half) == {inventories.shape(nodes[0]): 5, inventories.shape(nodes[-1]): 10}
    assert [n.name for n in half] == [f"s-{i:04d}" for i in range(15)]
    assert all(g.uuid == f"{n.name}/gpu-{g.index}" for n in half for g in n.gpus)


@given(counts=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 30)), min_size=1, max_size=6, unique_by=lambda t: t[0]),
       target=st.integers(8, 600))
def test_scaling_lands_within_one_node_of_the_target_and_one_node_of_each_share(counts, target):
    nodes = [node(f"n{gpus}-{i}").gpus(gpus, model="X").build() for gpus, count in counts for i in range(count)]
    total = inventories.gpu_count(nodes)
    out = shapes(inventories.scaled(nodes, gpus=target, prefix="s"))
    assert target - max(g for g, _ in counts) < inventories.gpu_count(inventories.scaled(nodes, gpus=target, prefix="s")) <= target
    for gpus, count in counts:
        exact = count * target / total
        assert exact - 1 < out[inventories.shape(node("x").gpus(gpus, model="X").build())] < exact + 1


def test_pools_are_renamed_by_size_and_extra_pools_keep_their_names():
    nodes = [node("a").gpus(2, model="small").build(), node("b").gpus(8, model="big").build(),
             node("c").gpus(1, model="tiny").build()]
    reference = [node("r1").gpus(8, model="G2").build(), node("r2").gpus(4, model="T4").build()]
    renamed = inventories.named_like(nodes, reference)
    assert [n.gpus[0].model for n in renamed] == ["T4", "G2", "tiny"]
    assert renamed[1].labels["nvidia.com/gpu.product"] == "G2"
