"""Invariants of gangs and quotas under random clusters, teams and event streams (hypothesis).

Streams mix gang members and single pods of several teams, filters and binds (some to the
wrong node, some whose commit fails), clock jumps with sweeps, departures of bound and pending
pods, and nodes going out of service. After every step:

- no partial gang is ever bound: a member is bound only while its gang's bound members plus its
  reservation cover the whole gang, and a gang left partly bound without a reservation (its
  reservation expired or was invalidated) is listed for eviction, whole;
- no team is ever above its max (allocated plus reserved, in the configured unit);
- no pod within its team's guarantee is ever a reclaim victim, nor kept by /preempt, and gangs
  are victims whole;
- reservations never overlap anything: the books equal capacity minus every allocation and
  every reserved grant, and no GPU is over-committed;
and at the end, an extender restarted from its state file shows the same /state (twice: the
first restart compacts the file).
"""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.clusterfile import ClusterSpec
from scheduler.configfile import GatesConfig
from scheduler.core.contract import ZONE_LABEL
from scheduler.core.engine import BindRejected
from scheduler.core.gang_planning import Topology
from scheduler.core.gangs import GangSettings, Phase
from scheduler.core.model import Gpu, Node
from scheduler.core.quotas import ModelWeight, QuotaConfig, QuotaUnit, Team
from scheduler.core.reclaim import beyond_guarantee
from scheduler.core.reclaim_plans import current_plans
from scheduler.core.request import parse_pod
from scheduler.extender.server import cluster_service
from scheduler.extender.statefile import StateJournal
from scheduler.extender.wire import BindingArgs
from tests.gangs_quotas.builders import RACK, worker
from tests.gangs_quotas.conftest import FakeClock

MODELS = ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]
TEAMS = ["red", "blue", "green"]
"""Teams a config may list; pods also come from "grey", which none does (guaranteed nothing)."""


@st.composite
def clusters(draw) -> list[Node]:
    out = []
    for i in range(draw(st.integers(2, 6))):
        count = draw(st.sampled_from([0, 2, 4, 8, 8]))
        model = draw(st.sampled_from(MODELS))
        nvlink = draw(st.booleans())
        gpus = tuple(Gpu(g, f"GPU-n{i}-{g}", model, 81920,
                         nvlink_peers=tuple(p for p in range(count) if p != g) if nvlink else ()) for g in range(count))
        labels = {ZONE_LABEL: draw(st.sampled_from(["a", "b"])), RACK: draw(st.sampled_from(["r1", "r2"]))}
        out.append(Node(f"n{i}", 64_000, 1 << 20, gpus, labels))
    return out


@st.composite
def quota_configs(draw) -> QuotaConfig:
    teams = []
    for name in draw(st.lists(st.sampled_from(TEAMS), unique=True, max_size=3)):
        guaranteed = draw(st.sampled_from([0, 2000, 4000, 8000, 16000]))
        limit = draw(st.sampled_from([None, guaranteed, guaranteed + 4000, guaranteed + 16000]))
        teams.append(Team(name, guaranteed, limit, draw(st.sampled_from([1.0, 2.0]))))
    unit = draw(st.sampled_from(list(QuotaUnit)))
    return QuotaConfig(tuple(teams), unit, (ModelWeight("H100*", 2.0),) if unit is QuotaUnit.A100_EQUIVALENT else ())


@st.composite
def pods(draw) -> list[dict]:
    """Borrowers first (pods of "grey"), then gangs (1-4 members, whole GPUs or shares) and single
    pods of random teams: the order in which reclaim has something to do."""
    out = [worker(f"b{i}", gpus=draw(st.sampled_from([1, 4, 8])), namespace="grey").build()
           for i in range(draw(st.integers(0, 4)))]
    for g in range(draw(st.integers(1, 4))):
        size = draw(st.integers(1, 4))
        gpus = draw(st.sampled_from([0, 1, 2, 4, 8]))
        team = draw(st.sampled_from([*TEAMS, "grey"]))
        timeout = draw(st.sampled_from([None, 30, 120]))
        for m in range(size):
            b = worker(f"g{g}-{m}", gpus=gpus, milli=0 if gpus else 500, namespace=team).gang(f"g{g}", size,
                                                                                                timeout_s=timeout)
            out.append(b.team(team).build())
    for s in range(draw(st.integers(0, 5))):
        team = draw(st.sampled_from([*TEAMS, "grey"]))
        gpus = draw(st.sampled_from([0, 1, 2, 8]))
        out.append(worker(f"s{s}", gpus=gpus, milli=0 if gpus else 250, namespace=team).team(team).build())
    return out


class World:
    """The service under test plus what the test knows independently of it."""

    def __init__(self, nodes, quotas, path, clock) -> None:
        self.nodes, self.quotas, self.path, self.clock = nodes, quotas, path, clock
        self.gates = GatesConfig(quotas, GangSettings(topology=Topology(rack_label=RACK)))
        self.unavailable: set[str] = set()
        self.service = self.start()
        self.engine = self.service.engine
        self.names = [n.name for n in nodes]
        self.ever_complete: set[tuple[str, str]] = set()

    def start(self):
        """The extender over the state file; node availability is the agents' word, so it is told again."""
        service = cluster_service(ClusterSpec(list(self.nodes), []), gates=self.gates, clock=self.clock,
                                  journal=StateJournal(self.path))
        for name in sorted(self.unavailable):
            service.engine.set_node_unavailable(name, "agent heartbeat is stale")
        service._flush_records()
        return service


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(nodes=clusters(), quotas=quota_configs(), workload=pods(), data=st.data())
def test_gang_and_quota_invariants_hold_under_any_stream(tmp_path_factory, nodes, quotas, workload, data):
    path = tmp_path_factory.mktemp("state") / "state.jsonl"
    asyncio.run(_run(World(nodes, quotas, path, FakeClock()), workload, data))


async def _run(world: World, workload: list[dict], data) -> None:
    steps = data.draw(st.integers(10, 60), label="steps")
    for _ in range(steps):
        action = data.draw(st.sampled_from(["cycle", "cycle", "cycle", "cycle", "wrong-bind", "failed-commit",
                                            "time", "leave", "node", "preempt"]), label="action")
        await ACTIONS[action](world, workload, data)
        check_invariants(world)
    before = world.service.state()
    world.service.binder.journal.close()
    for _ in range(2):  # the first restart compacts the file; the second reads the compacted file
        world.service = world.start()
        world.engine = world.service.engine
        after = world.service.state()
        assert after == before, _differences(before, after)
        world.service.binder.journal.close()


def _differences(before: dict, after: dict) -> str:
    return "; ".join(f"{key}: {before.get(key)!r} became {after.get(key)!r}"
                     for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key))


async def cycle(world: World, workload, data) -> None:
    pod = data.draw(st.sampled_from(workload[:data.draw(st.integers(1, len(workload)), label="reach")]), label="pod")
    uid = pod["metadata"]["uid"]
    if uid in world.engine.allocations:
        return
    request = parse_pod(pod)
    answer = world.engine.filter(request, world.names)
    world.service._flush_records()
    if answer.passed and data.draw(st.booleans(), label="bind"):
        node = data.draw(st.sampled_from(answer.passed), label="node")
        await bind(world, request, node)


async def bind(world: World, request, node: str) -> None:
    """Bind through the service; a gang member must have been covered by its gang's reservation."""
    gang = world.engine.gates.gangs.gang_of(request.uid) if request.gang else None
    covered = None
    if gang is not None:
        reservation = gang.reservation
        size = world.engine.gates.gangs.size(gang)
        held = reservation is not None and request.uid in reservation.members
        covered = held and len(gang.bound) + len(reservation.members) >= (size or 0)
    await world.service.bind(BindingArgs(request.name, request.namespace, request.uid, node))
    bound = request.uid in world.engine.allocations
    if bound and gang is not None and (gang.key.namespace, gang.key.name) not in world.ever_complete:
        assert covered, f"{request.key} bound without a reservation covering gang {gang.key}"


async def wrong_bind(world: World, workload, data) -> None:
    pod = data.draw(st.sampled_from(workload), label="pod")
    request = parse_pod(pod)
    if request.uid in world.engine.allocations:
        return
    world.engine.filter(request, world.names)
    world.service._flush_records()
    held = world.engine.gates.planned_node(request)
    others = [n for n in world.names if n != held]
    if held is None or not others:
        return
    node = data.draw(st.sampled_from(others), label="node")
    before = world.service.state()
    try:
        world.engine.bind(request.uid, request.namespace, request.name, node)
    except BindRejected:
        pass
    else:
        raise AssertionError(f"{request.key} bound to {node}, not its planned {held}")
    assert world.service.state() == before


async def failed_commit(world: World, workload, data) -> None:
    """A bind whose commit fails (the API refused the Binding): the pod is pending again."""
    pod = data.draw(st.sampled_from(workload), label="pod")
    request = parse_pod(pod)
    if request.uid in world.engine.allocations:
        return
    answer = world.engine.filter(request, world.names)
    world.service._flush_records()
    if not answer.passed:
        return
    planned = world.engine.gates.planned_node(request)
    before = world.service.state()
    try:
        alloc = world.engine.bind(request.uid, request.namespace, request.name, answer.passed[0])
    except BindRejected:
        return
    world.service.binder.journal.bound(alloc)
    world.engine.unbind(alloc.uid)
    world.service.binder.journal.released(alloc.uid)
    world.service._flush_records()
    after = world.service.state()
    if planned is not None:
        assert world.engine.gates.planned_node(request) == planned  # its GPUs stay held for the gang
    assert after["nodes"] == before["nodes"]


async def time_passes(world: World, workload, data) -> None:
    world.clock.advance(data.draw(st.sampled_from([1, 29, 31, 60, 121, 400]), label="seconds"))
    world.service.expire()


async def leave(world: World, workload, data) -> None:
    uid = data.draw(st.sampled_from([p["metadata"]["uid"] for p in workload]), label="leaving")
    await world.service.release(uid)


async def node_change(world: World, workload, data) -> None:
    name = data.draw(st.sampled_from(world.names), label="node")
    change = data.draw(st.sampled_from(["out", "in", "heartbeat"]), label="change")
    if change == "heartbeat":
        world.engine.upsert_node(world.engine.state.specs[world.engine.state.index[name]])
    else:
        world.engine.set_node_unavailable(name, "agent heartbeat is stale" if change == "out" else "")
        (world.unavailable.add if change == "out" else world.unavailable.discard)(name)
    world.service._flush_records()


async def preempt(world: World, workload, data) -> None:
    pod = data.draw(st.sampled_from(workload), label="preemptor")
    request = parse_pod(pod)
    if request.uid in world.engine.allocations or not world.engine.allocations:
        return
    by_node: dict[str, list[str]] = {}
    for alloc in world.engine.allocations.values():
        by_node.setdefault(alloc.node, []).append(alloc.uid)
    kept = world.engine.preempt(request, by_node)
    victims = [u for us in kept.values() for u in us]
    check_victims(world, world.engine.gates.quotas.team_of(request), victims, preempt=True,
                  asking_within_guarantee=world.engine.gates.quotas.within_guarantee(
                      world.engine.gates.quotas.team_of(request), world.engine.gates.ask(request)))


ACTIONS = {"cycle": cycle, "wrong-bind": wrong_bind, "failed-commit": failed_commit, "time": time_passes,
           "leave": leave, "node": node_change, "preempt": preempt}


def check_invariants(world: World) -> None:
    engine = world.engine
    gates = engine.gates
    state = engine.state
    # Books: capacity minus every allocation and every reserved grant, never over-committed.
    expected = np.where(state.present, 1000, 0).astype(np.int64)
    held = list(engine.allocations.values()) + [a for r in gates.gangs.reservations() for a in r.members.values()]
    for alloc in held:
        row = state.index.get(alloc.node)
        if row is not None:
            for slot in alloc.slots:
                expected[row, slot] -= alloc.milli
    live = state.live_rows()
    assert (expected[live] >= 0).all(), "a GPU is over-committed"
    assert (state.free_milli[live] == expected[live]).all(), "the books disagree with allocations + reservations"
    # Gangs: partly bound only with a covering reservation, or broken (listed for eviction).
    evicting = {key for key, _, _ in gates.evictions()}
    for gang in gates.gangs:
        size = gates.gangs.size(gang)
        phase = gates.gangs.phase(gang)
        if phase is Phase.COMPLETE:
            world.ever_complete.add((gang.key.namespace, gang.key.name))
        if (gang.key.namespace, gang.key.name) in world.ever_complete or not gang.bound or size is None:
            continue
        if gang.reservation is not None:
            assert len(gang.bound) + len(gang.reservation.members) >= size
        else:
            assert gang.key in evicting, f"gang {gang.key}: {len(gang.bound)} of {size} bound, nothing reserved"
    # Teams: never above max, reservations included.
    for team in world.quotas.teams:
        if team.max_milli is not None:
            assert gates.quotas.used(team.name) <= team.max_milli, f"team {team.name} above its max"
    # Reclaim: never a pod within its team's guarantee, gangs whole.
    for plan in current_plans(gates):
        check_victims(world, plan.ask.team, list(plan.uids), preempt=False)


def check_victims(world: World, asking_team: str, victims: list[str], *, preempt: bool,
                  asking_within_guarantee: bool = True) -> None:
    engine = world.engine
    gates = engine.gates
    quotas = gates.quotas
    units = gates.units()
    chosen = set(victims)
    for unit in units:
        taken = [u for u in unit.uids if u in chosen]
        if taken and unit.gang:
            assert len(taken) == len(unit.uids), f"gang {unit.gang} would be evicted in part"
    if not quotas.enabled:
        return
    beyond = {uid for unit in beyond_guarantee(units, lambda t: quotas.team(t).guaranteed_milli) if unit.borrowed
              for uid in unit.uids}
    for uid in victims:
        alloc = engine.allocations.get(uid)
        if alloc is None:
            continue  # not gpusched's: kube-scheduler's business
        assert uid in beyond, f"{alloc.key} is within its team's guarantee"
        if not preempt:
            assert alloc.team != asking_team, f"{alloc.key} would be reclaimed by its own team"
        elif alloc.team != asking_team:
            assert asking_within_guarantee, f"{alloc.key} taken by team {asking_team}, which is borrowing itself"
