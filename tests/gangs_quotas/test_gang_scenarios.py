"""The scenarios users pick a gang scheduler for, each run in-process and over real HTTP.

- Two gangs that each fit alone but not together: one is placed whole, the other waits whole
  (Volcano's deadlock of two 100-pod jobs on a 100-node cluster cannot happen).
- Capacity that is only fragmented (4 + 4 free GPUs) never admits an 8-GPU pod or member.
- A 16 × 8-GPU data-parallel job on a 20-node cluster, and smaller gangs kept in one rack/zone.
- A reservation nobody binds is released at its timeout, visibly.
"""

from __future__ import annotations

from scheduler.core.allocation import Allocation
from scheduler.core.gang_planning import Topology
from scheduler.core.gangs import GangSettings
from tests.gangs_quotas.builders import RACK, gang_of, gpu_node, nodes, worker


def used_gpus(state: dict) -> int:
    return sum(g["usedMilli"] for n in state["nodes"] for g in n["gpus"]) // 1000


def gang_entry(state: dict, name: str) -> dict:
    return next(g for g in state["gangs"] if g["gang"] == name)


async def test_two_gangs_that_fit_only_alone_never_deadlock(make):
    # 100 nodes × 8 GPUs; two jobs of 100 members × 8 GPUs whose members arrive interleaved.
    driver = await make(nodes(100, gpus=8))
    job_a, job_b = gang_of("job-a", 100), gang_of("job-b", 100)
    interleaved = [p for pair in zip(job_a, job_b, strict=True) for p in pair]
    for pod in interleaved:
        outcome = await driver.cycle(pod)
        assert outcome.node is None or pod in job_a  # job-b never gets a node while job-a holds the cluster
    state = await driver.state()
    assert gang_entry(state, "ml/job-a")["phase"] in ("reserved", "complete")
    b = gang_entry(state, "ml/job-b")
    assert b["phase"] == "waiting" and "reservation" not in b
    assert b["problem"] == "100 members do not fit together now: room for 0 of 100 members that each need 8 whole GPUs on one node"
    placed = await driver.settle(job_a + job_b)
    assert len(placed) == 100 and all(k.startswith("ml/job-a") for k in placed)
    assert len(set(placed.values())) == 100
    assert used_gpus(await driver.state()) == 800  # job-a's GPUs, nothing held for job-b
    for pod in job_a:  # job-a finishes
        await driver.release(pod["metadata"]["uid"])
    placed = await driver.settle(job_b)
    assert len(placed) == 100


async def test_a_waiting_member_hears_how_many_are_pending(make):
    driver = await make(nodes(4, gpus=8))
    members = gang_of("train-7", 4)
    outcomes = [await driver.cycle(p) for p in members[:3]]
    assert [o.reasons for o in outcomes] == [{f"gang ml/train-7: {i} of 4 members pending"} for i in (1, 2, 3)]
    assert all(not o.failed for o in outcomes)  # unresolvable: preemption cannot help a waiting gang
    assert used_gpus(await driver.state()) == 0


async def test_fragmented_capacity_never_admits_a_whole_8_gpu_ask(make):
    # Two nodes with 4 + 4 free GPUs: 8 free in total, never 8 on one node.
    running = [Allocation(f"u{i}", "other", f"p{i}", f"n{i}", tuple(f"GPU-n{i}-{g}" for g in range(4)),
                          (0, 1, 2, 3), 1000, (81920,) * 4) for i in range(2)]
    driver = await make(nodes(2, gpus=8), pods=running)
    single = await driver.cycle(worker("big", gpus=8).build())
    assert single.node is None and single.reasons == {"not enough free whole GPUs"}
    member = await driver.cycle(worker("big-0", gpus=8).gang("big", 1).build())
    assert member.node is None
    assert member.reasons == {"gang ml/big: 1 members do not fit together now: room for 0 of 1 members that each "
                              "need 8 whole GPUs on one node"}
    halves = gang_of("halves", 2, gpus=4)
    placed = await driver.settle(halves)
    assert sorted(placed.values()) == ["n0", "n1"]


def twenty_nodes():
    # zone-a: rack r1 (a0-a4), r2 (a5-a9); zone-b: rack r3 (b0-b4), r4 (b5-b9)
    return ([gpu_node(f"a{i}", zone="zone-a", rack="r1" if i < 5 else "r2") for i in range(10)]
            + [gpu_node(f"b{i}", zone="zone-b", rack="r3" if i < 5 else "r4") for i in range(10)])


async def test_a_16_node_data_parallel_job_on_20_nodes(make):
    driver = await make(twenty_nodes(), gangs=GangSettings(topology=Topology(rack_label=RACK)))
    job = gang_of("ddp", 16)
    first = [await driver.cycle(p) for p in job]
    assert [o.node for o in first[:15]] == [None] * 15 and first[15].node is not None
    reservation = gang_entry(await driver.state(), "ml/ddp")["reservation"]
    assert len(reservation["members"]) == 15 and len(reservation["nodes"]) == 16  # the 16th is already bound
    assert reservation["zones"] == ["zone-a", "zone-b"]  # 16 nodes cannot share one zone of 10
    placed = await driver.settle(job)
    assert len(placed) == 16 and len(set(placed.values())) == 16
    state = await driver.state()
    assert gang_entry(state, "ml/ddp")["phase"] == "complete"
    for node in state["nodes"]:
        pods = {p for g in node["gpus"] for p in g["pods"]}
        assert len(pods) <= 1  # each member has a whole node: all 8 GPUs NVLink-connected


async def test_smaller_gangs_stay_in_one_rack_then_one_zone(make):
    driver = await make(twenty_nodes(), gangs=GangSettings(topology=Topology(rack_label=RACK)))
    await driver.settle(gang_of("four", 4))
    await driver.settle(gang_of("eight", 8))
    await driver.settle(gang_of("packed", 4, gpus=2))
    state = await driver.state()
    by_pod = {p: n["name"] for n in state["nodes"] for g in n["gpus"] for p in g["pods"]}
    four = {by_pod[f"ml/four-{i}"] for i in range(4)}
    eight = {by_pod[f"ml/eight-{i}"] for i in range(8)}
    packed = {by_pod[f"ml/packed-{i}"] for i in range(4)}
    racks = {n: ("r1" if n[0] == "a" and int(n[1:]) < 5 else "r2" if n[0] == "a" else
                 "r3" if int(n[1:]) < 5 else "r4") for n in by_pod.values()}
    assert len({racks[n] for n in four}) == 1  # 4 nodes fit in one rack of 5
    assert len({n[0] for n in eight}) == 1  # 8 nodes fit in one zone of 10
    assert len(packed) == 1  # 4 × 2 GPUs: fewest nodes is one node


async def test_a_reservation_nobody_binds_is_released_at_its_timeout(make):
    driver = await make(nodes(2, gpus=8))
    members = gang_of("slow", 2, gpus=8, timeout_s=60)
    first = await driver.cycle(members[0])
    assert first.node is None
    completing = await driver.cycle(members[1])
    assert completing.node is not None  # the completing member binds; member 0 never comes back
    driver.clock.advance(59)
    await driver.sweep()
    assert gang_entry(await driver.state(), "ml/slow")["phase"] == "reserved"
    driver.clock.advance(1)
    await driver.sweep()
    state = await driver.state()
    assert state["gangHistory"][-1] | {"at": 0} == {
        "gang": "ml/slow", "reservation": 1, "outcome": "expired", "at": 0, "bound": 1,
        "reason": "reservation expired after 60s with 1 of 2 members bound"}
    entry = gang_entry(state, "ml/slow")
    assert entry["phase"] == "broken"  # one member runs alone: it is listed for eviction, whole
    assert state["gangEvictions"] == [{"gang": "ml/slow", "uids": ["uid-ml-slow-1"], "reason": entry["broken"]}]
    assert used_gpus(state) == 8  # member 0's reserved GPUs are free again
    retry = await driver.cycle(members[0])
    assert retry.node is None and retry.reasons == {
        "gang ml/slow: reservation expired after 60s with 1 of 2 members bound; its 1 bound members must leave "
        "before it is planned again"}
    if driver.kind == "http":
        metrics = await driver.metrics()
        assert 'gpusched_gang_reservations_total{event="expired"} 1.0' in metrics
        assert 'gpusched_gangs{phase="broken"} 1.0' in metrics
    await driver.release(members[1]["metadata"]["uid"])  # the reclaimer evicts it
    assert len(await driver.settle(members)) == 2  # planned afresh, whole
