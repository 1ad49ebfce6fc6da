"""Nothing the engine remembers grows without bound (issue 13, item 10): one test per structure.
How fast they stay is `benchmarks/growth.py`'s business; these check that the bound holds and that
what is kept is still right."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from scheduler.core.contract import GANG_LABEL, TEAM_LABEL
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.gangs import GangSettings
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.policies import node_memo
from scheduler.core.request import GangSpec, PodRequest, parse_pod
from scheduler.core.selector import ModelSelector
from scheduler.core.workload import MAX_SHAPES, MAX_TYPES, TaskType, Workload, WorkloadMix
from tests.builders import pod

A100 = "NVIDIA-A100-SXM4-80GB"
ANY = ModelSelector()


def nodes(count: int, *, gpus: int = 8, sharing: Sharing = Sharing.EXCLUSIVE) -> list[Node]:
    return [Node(f"n{i:04d}", 64_000, 1 << 19, tuple(Gpu(g, f"GPU-{i}-{g}", A100, 81920, sharing)
                                                     for g in range(gpus))) for i in range(count)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def member(gang: str, index: int, size: int = 2, *, timeout_s: int | None = None) -> PodRequest:
    return PodRequest(uid=f"{gang}-{index}", namespace="ml", name=f"{gang}-{index}", gpus=1,
                      gang=GangSpec(gang, size, timeout_s))


# ------------------------------------------------------------------ pods seen
def test_the_uids_seen_never_exceed_the_pending_limit():
    engine = Engine(nodes(2), settings=EngineSettings(pending_limit=100))
    names = ["n0000", "n0001"]
    for i in range(1_000):
        engine.filter(PodRequest(uid=f"u{i}", namespace="ml", name=f"p{i}", gpus=1), names)
    assert len(engine._seen) <= 100 and len(engine._pending) <= 100
    assert engine._mix.observed == 1_000  # each pod counted once in the workload mix


def test_a_pod_filtered_again_and_again_is_counted_once():
    engine = Engine(nodes(2), settings=EngineSettings(pending_limit=10))
    again = PodRequest(uid="again", namespace="ml", name="again", gpus=2)
    for i in range(100):
        engine.filter(again, ["n0000"])  # kept fresh: never the oldest
        engine.filter(PodRequest(uid=f"u{i}", namespace="ml", name=f"p{i}", gpus=1), ["n0000"])
    assert engine._mix.observed == 101


# --------------------------------------------------------------------- labels
def test_a_pending_pod_keeps_only_the_labels_gpusched_reads():
    built = pod("p").gpus(1).label(TEAM_LABEL, "vision").label(GANG_LABEL, "g").annotate(
        "gpusched.io/gang-size", "2").build()
    built["metadata"]["labels"].update({f"app.kubernetes.io/label-{i}": "x" * 60 for i in range(50)})
    assert dict(parse_pod(built).labels) == {TEAM_LABEL: "vision", GANG_LABEL: "g"}


# ---------------------------------------------------------------------- gangs
def test_waiting_gangs_nobody_filters_any_more_are_forgotten():
    clock = Clock()
    engine = Engine(nodes(2), clock=clock, settings=EngineSettings(gangs=GangSettings(default_timeout_s=60)))
    engine.gates.journal.enabled = True
    for g in range(300):  # one member of two each: they wait for ever
        engine.filter(member(f"g{g}", 0), ["n0000"])
    engine.gates.journal.drain()
    ttl = GangSettings().forget_idle_members_after(60)
    assert ttl == max(2 * 60, GangSettings().idle_floor_s)
    clock.now += ttl - 1
    engine.filter(member("g7", 0), ["n0000"])  # still asked about: kept
    engine.expire()
    assert len(list(engine.gates.gangs)) == 300
    clock.now += 2
    engine.expire()
    assert [g.key.name for g in engine.gates.gangs] == ["g7"]
    assert set(engine.gates.gangs._member_of) == {"g7-0"}
    forgotten = [r["uid"] for r in engine.gates.journal.drain() if r["kind"] == "forget"]
    assert len(forgotten) == 299  # journaled: a restart forgets them too
    clock.now += ttl + 1
    engine.expire()
    assert list(engine.gates.gangs) == [] and engine.gates.gangs._member_of == {}


def test_a_reserved_member_is_not_forgotten_while_its_reservation_holds():
    clock = Clock()
    engine = Engine(nodes(2), clock=clock, settings=EngineSettings(gangs=GangSettings(default_timeout_s=3_600)))
    engine.filter(member("r", 0), ["n0000", "n0001"])
    engine.filter(member("r", 1), ["n0000", "n0001"])
    assert engine.gates.gangs.reserved_for("r-0") is not None
    clock.now += GangSettings().idle_floor_s + 1  # idle that long, but the reservation (1 h) holds them
    engine.expire()
    assert engine.gates.gangs.reserved_for("r-0") is not None
    clock.now += 3_600  # the reservation expires; then its members idle out like any other
    engine.expire()
    assert engine.gates.gangs.reserved_for("r-0") is None
    clock.now += GangSettings().forget_idle_members_after(3_600) + 1
    engine.expire()
    assert list(engine.gates.gangs) == []


def test_reservations_expire_exactly_when_due_among_many():
    """The deadline queue against the obvious answer: every reservation ends at its own deadline."""
    clock = Clock()
    rng = random.Random(7)
    engine = Engine(nodes(400, gpus=1), clock=clock, settings=EngineSettings(gangs=GangSettings()))
    names = [f"n{i:04d}" for i in range(400)]
    deadlines = {}
    for g in range(200):
        timeout = rng.randint(1, 50)
        engine.filter(member(f"g{g:03d}", 0, timeout_s=timeout), names)
        engine.filter(member(f"g{g:03d}", 1, timeout_s=timeout), names)
        deadlines[f"g{g:03d}"] = clock.now + timeout
    assert len(engine.gates.gangs.reservations()) == 200
    ended: list[tuple[float, str]] = []
    while len(ended) < 200:
        clock.now += 1
        batch = [e.gang.name for e in engine.expire()]
        assert batch == sorted(batch)  # several due at once: in key order, as before
        ended += [(clock.now, name) for name in batch]
    for now, name in ended:
        assert deadlines[name] <= now < deadlines[name] + 1


# ---------------------------------------------------------------- score cache
def test_the_score_cache_is_bounded_by_bytes(monkeypatch):
    engine = Engine(nodes(64, sharing=Sharing.TIME_SLICING), settings=EngineSettings(policy="fgd"))
    monkeypatch.setattr(node_memo, "MEMO_BYTES", node_memo.BYTES_PER_ROW * engine.state.rows * 10)
    names = [f"n{i:04d}" for i in range(64)]
    for i in range(40):
        engine.score_array(PodRequest(uid=f"u{i}", namespace="ml", name=f"p{i}", gpu_milli=100 + i), names)
    assert 1 <= len(engine._context.memo["fgd"]) <= 10
    assert node_memo.memo_limit(1) == node_memo.MEMO_LIMIT  # small clusters: the entry limit


def test_a_cache_hit_keeps_a_shape_fresh(monkeypatch):
    engine = Engine(nodes(8, sharing=Sharing.TIME_SLICING), settings=EngineSettings(policy="fgd"))
    monkeypatch.setattr(node_memo, "MEMO_BYTES", node_memo.BYTES_PER_ROW * engine.state.rows * 3)
    names = [f"n{i:04d}" for i in range(8)]
    hot = PodRequest(uid="hot", namespace="ml", name="hot", gpu_milli=500)
    for i in range(10):
        engine.score_array(hot, names)
        engine.score_array(PodRequest(uid=f"u{i}", namespace="ml", name=f"p{i}", gpu_milli=100 + i), names)
    assert node_memo.shape_key(hot) in engine._context.memo["fgd"]


# --------------------------------------------------------------- workload mix
def test_the_workload_mix_counts_a_bounded_number_of_shapes_and_keeps_the_popular_ones():
    mix = WorkloadMix()
    popular = [TaskType(1000 * k, 1000, 1, ANY) for k in range(1, 4)]
    for i in range(20_000):
        mix.observe_type(popular[i % 3])
        mix.observe_type(TaskType(i + 1, 1 + i % 999, 1, ANY))  # each seen once
    assert len(mix._counts) <= MAX_SHAPES
    workload = mix.snapshot()
    assert len(workload.types) <= MAX_TYPES
    assert set(popular) <= set(workload.types)


@pytest.mark.parametrize("shapes", [10, 200])
def test_a_small_mix_is_unchanged_by_the_bounds(shapes):
    rng = np.random.default_rng(3)
    mix, counts = WorkloadMix(), {}
    for _ in range(5_000):
        k = int(rng.zipf(1.5)) % shapes
        shape = TaskType(100 * (k + 1), 1000, 1, ANY)
        counts[shape] = counts.get(shape, 0) + 1
        mix.observe_type(shape)
    assert mix.snapshot().types == Workload.of(Counter(counts), coverage=0.95).types
