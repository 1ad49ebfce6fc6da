"""plan_gang: every member's node and GPUs at once, by its documented criteria, on a copy.

Criteria in order: every member fits; fewest nodes; fewest zones, then racks; NVLink inside a
node; the policy; the node name.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.gang_planning import GangPlan, Topology, plan_gang
from scheduler.core.model import Gpu, Node, Sharing
from tests.gangs_quotas.builders import RACK, gpu_node, worker

TOPOLOGY = Topology(rack_label=RACK)


def plan(nodes, members, *, candidates=None, running=(), policy="binpack"):
    engine = Engine(nodes, settings=EngineSettings(policy=policy))
    for pod, node in running:
        engine.place(pod, node)
    tools = engine.gates.tools
    before = engine.state.free_milli.copy()
    result = plan_gang(engine.state, members, candidates=candidates, models_of=tools.models_of,
                       policy_of=tools.policy_of, ctx=tools.context(), allocate=tools.allocate, topology=TOPOLOGY)
    assert (engine.state.free_milli == before).all()  # a what-if: the books are untouched
    return result


def members(name: str, count: int, **kwargs) -> list:
    return [worker(f"{name}-{i}", **kwargs).gang(name, count).request() for i in range(count)]


def nodes_of(result: GangPlan) -> dict[str, str]:
    return {a.name: a.node for a in result.placements}


@pytest.mark.parametrize(("cluster", "gang", "expected_nodes"), [
    # 4 members × 2 GPUs: one 8-GPU node holds them all.
    ([gpu_node("a"), gpu_node("b")], members("w", 4, gpus=2), {"a"}),
    # 2 × 4 GPUs: the lone 8-GPU node in zone z2 beats two 4-GPU nodes in zone z1 (fewest nodes first).
    ([gpu_node("a", 4, zone="z1"), gpu_node("b", 4, zone="z1"), gpu_node("c", 8, zone="z2")],
     members("w", 2, gpus=4), {"c"}),
    # 2 × 8 GPUs: zone z2 holds both; n0 alone in z1 would split the gang across zones.
    ([gpu_node("n0", zone="z1"), gpu_node("n1", zone="z2"), gpu_node("n2", zone="z2")],
     members("w", 2, gpus=8), {"n1", "n2"}),
    # Same zone, racks r1 (n0) and r2 (n1, n2): the rack that holds both.
    ([gpu_node("n0", zone="z", rack="r1"), gpu_node("n1", zone="z", rack="r2"), gpu_node("n2", zone="z", rack="r2")],
     members("w", 2, gpus=8), {"n1", "n2"}),
    # 3 × 8 GPUs: no zone holds 3, so the larger zone first (z2's two nodes), then one more.
    ([gpu_node("n0", zone="z1"), gpu_node("n1", zone="z2"), gpu_node("n2", zone="z2")],
     members("w", 3, gpus=8), {"n0", "n1", "n2"}),
], ids=["fewest nodes", "fewer nodes beat one zone", "one zone", "one rack", "spans zones when it must"])
def test_placement_preferences(cluster, gang, expected_nodes):
    result = plan(cluster, gang)
    assert isinstance(result, GangPlan)
    assert set(result.nodes) == expected_nodes


def test_nvlink_connected_gpus_win_a_tie_on_everything_else():
    # Both nodes have 4 free GPUs; on "x-links" they are NVLink-connected, on "a-plain" not.
    plain = Node("a-plain", 128_000, 1 << 20, tuple(Gpu(i, f"GPU-p-{i}", "A100", 81920) for i in range(4)))
    result = plan([plain, gpu_node("x-links", 4)], members("w", 1, gpus=4))
    assert result.nodes == ("x-links",)


def test_the_node_that_completes_a_group_is_the_best_fit():
    # 3 × 4 GPUs: the 8-GPU node takes two, then the 4-free node (not the other 8-GPU one) the last.
    busy = worker("busy", gpus=4).request()
    result = plan([gpu_node("a"), gpu_node("b"), gpu_node("c")], members("w", 3, gpus=4), running=[(busy, "c")])
    assert sorted(nodes_of(result).values()) == ["a", "a", "c"]


def test_a_cpu_only_launcher_joins_a_node_its_workers_use():
    launcher = worker("job-launcher", cpu="2").gang("job", 3).request()
    result = plan([gpu_node("a"), gpu_node("b")], [*members("job", 2, gpus=8)[:2], launcher])
    assert len(result.nodes) == 2 and nodes_of(result)["job-launcher"] in result.nodes


def test_shares_pack_onto_shared_gpus():
    shared = Node("ts", 128_000, 1 << 20, tuple(Gpu(i, f"GPU-ts-{i}", "A100", 81920, Sharing.TIME_SLICING)
                                                for i in range(4)))
    result = plan([shared], members("s", 4, milli=500))
    assert sorted({a.gpu_uuids for a in result.placements}) == [("GPU-ts-0",), ("GPU-ts-1",)]


def test_members_keep_to_the_nodes_kube_scheduler_passed_for_them():
    gang = members("w", 2, gpus=8)
    only = {gang[0].uid: np.array([2]), gang[1].uid: np.array([2, 3])}
    result = plan([gpu_node(f"n{i}") for i in range(4)], gang, candidates=only)
    assert nodes_of(result) == {"w-0": "n2", "w-1": "n3"}


def test_a_gang_that_does_not_fit_gets_a_reason_and_changes_nothing():
    result = plan([gpu_node("a"), gpu_node("b", 4)], members("w", 2, gpus=8))
    assert result == "room for 1 of 2 members that each need 8 whole GPUs on one node"


def test_the_plan_does_not_depend_on_the_order_members_arrive_in():
    cluster = [gpu_node(f"n{i}", zone=f"z{i % 2}", rack=f"r{i % 3}") for i in range(9)]
    gang = members("w", 5, gpus=4) + members("x", 3, gpus=2) + [worker("l", cpu="1").gang("w", 9).request()]
    first = plan(cluster, gang)
    shuffled = list(gang)
    random.Random(7).shuffle(shuffled)
    again = plan(cluster, shuffled)
    assert sorted((a.uid, a.node, a.slots) for a in first.placements) == sorted(
        (a.uid, a.node, a.slots) for a in again.placements)
