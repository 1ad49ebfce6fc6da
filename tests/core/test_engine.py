"""The engine's verbs: bind (the extender is the binder), release, restore, preempt, node changes."""

import pytest

from scheduler.core.allocation import Allocation
from scheduler.core.engine import BindRejected, Engine, EngineSettings
from scheduler.core.model import Gpu, Node
from scheduler.core.view import state_view
from tests.builders import node, pod


@pytest.fixture
def engine():
    return Engine([node("a").gpus(2).build(), node("b").gpus(2, sharing="mps").build()],
                  settings=EngineSettings(policy="binpack"))


def filtered(engine, builder):
    request = builder.request()
    engine.filter(request, list(engine.state.index))
    return request


def test_bind_records_gpus_and_is_idempotent_per_uid(engine):
    request = filtered(engine, pod("p").gpus(2))
    first = engine.bind(request.uid, "ml", "p", "a")
    again = engine.bind(request.uid, "ml", "p", "a")
    assert first == again
    assert first.gpu_uuids == ("GPU-a-0", "GPU-a-1")
    assert state_view(engine)["nodes"][0]["gpus"][0]["usedMilli"] == 1000


@pytest.mark.parametrize(("call", "reason"), [
    (lambda e, r: e.bind("never-seen", "ml", "ghost", "a"), "was never filtered by gpusched"),
    (lambda e, r: e.bind(r.uid, "other-ns", "p", "a"), "belongs to ml/p"),
    (lambda e, r: e.bind("new-uid", "ml", "p", "a"), "UID mismatch for ml/p"),
    (lambda e, r: e.bind(r.uid, "ml", "p", "nowhere"), "node nowhere is unknown"),
    (lambda e, r: e.bind(r.uid, "ml", "p", "b") and e.bind(r.uid, "ml", "p", "a"), "already bound to b"),
], ids=["never seen", "namespace differs", "recreated pod", "unknown node", "bound elsewhere"])
def test_bind_refusals_name_the_problem(engine, call, reason):
    request = filtered(engine, pod("p").gpus(1))
    with pytest.raises(BindRejected, match=reason):
        call(engine, request)


def test_bind_rechecks_the_node(engine):
    first = filtered(engine, pod("p1").gpus(2))
    second = filtered(engine, pod("p2").gpus(1))   # filtered while node a was still free
    engine.bind(first.uid, "ml", "p1", "a")
    before = state_view(engine)
    with pytest.raises(BindRejected, match="node a no longer fits ml/p2: no single GPU with enough free capacity"):
        engine.bind(second.uid, "ml", "p2", "a")
    assert state_view(engine) == before


def test_release_gives_capacity_back(engine):
    request = filtered(engine, pod("p").share(400, memory_mib=1000))
    alloc = engine.bind(request.uid, "ml", "p", "b")
    assert engine.release(request.uid) == alloc
    assert engine.release(request.uid) is None
    gpus = state_view(engine)["nodes"][1]["gpus"]
    assert all(g["usedMilli"] == 0 and g["usedMemoryMiB"] == 0 for g in gpus)


def test_restore_rebuilds_identical_books(engine):
    for i, target in enumerate(["a", "b", "b"]):
        builder = pod(f"p{i}").gpus(1) if target == "a" else pod(f"p{i}").share(300, memory_mib=512)
        request = filtered(engine, builder)
        engine.bind(request.uid, "ml", request.name, target)
    records = [Allocation.from_record(a.to_record()) for a in engine.allocations.values()]
    fresh = Engine([node("a").gpus(2).build(), node("b").gpus(2, sharing="mps").build()])
    for record in records:
        assert fresh.restore(record) == ""
    assert state_view(fresh)["nodes"] == state_view(engine)["nodes"]


def test_restore_keeps_a_record_whose_gpu_vanished_and_says_so():
    engine = Engine([node("a").gpus(1).build()])
    alloc = Allocation(uid="u", namespace="ml", name="p", node="a", gpu_uuids=("GPU-gone",), slots=(0,), milli=1000,
                       gpu_memory_mib=(81920,))
    assert engine.restore(alloc) == "GPUs GPU-gone not on node a"
    assert "u" in engine.allocations


def test_node_update_remaps_allocations_by_uuid(engine):
    request = filtered(engine, pod("p").gpus(1))
    engine.bind(request.uid, "ml", "p", "a")   # GPU-a-0 at slot 0
    swapped = Node("a", 64000, 262144, (Gpu(0, "GPU-a-1", "NVIDIA-A100-SXM4-80GB", 81920),
                                        Gpu(1, "GPU-a-0", "NVIDIA-A100-SXM4-80GB", 81920)))
    engine.upsert_node(swapped)
    assert engine.allocations[request.uid].slots == (1,)
    gpus = state_view(engine)["nodes"][0]["gpus"]
    assert [g["usedMilli"] for g in gpus] == [0, 1000]


def test_unavailable_node_takes_no_pods_and_comes_back(engine):
    engine.set_node_unavailable("a", "gpusched agent on node a silent for 3m")
    answer = engine.filter(pod("p").gpus(1).request(), ["a"])
    assert answer.unresolvable == {"a": "gpusched agent on node a silent for 3m"}
    engine.set_node_unavailable("a", "")
    assert engine.filter(pod("q").gpus(1).request(), ["a"]).passed == ["a"]


def test_unknown_policy_annotation_rejects_everywhere(engine):
    answer = engine.filter(pod("p").gpus(1).policy("tetris").request(), ["a", "b"])
    assert set(answer.unresolvable) == {"a", "b"}
    assert "unknown policy 'tetris'" in answer.unresolvable["a"]


class TestPreempt:
    @pytest.fixture
    def busy(self):
        engine = Engine([node("n").gpus(4).build()])
        for i, (gpus, priority) in enumerate([(2, 100), (1, 5), (1, 0)]):
            builder = pod(f"v{i}").gpus(gpus)
            builder.priority = priority
            request = filtered(engine, builder)
            engine.bind(request.uid, "ml", request.name, "n")
        return engine, {a.name: a.uid for a in engine.allocations.values()}

    def test_keeps_only_the_victims_the_pod_needs(self, busy):
        engine, uid = busy
        # the preemptor needs 1 GPU: evicting the lowest-priority 1-GPU pod is enough
        kept = engine.preempt(pod("urgent").gpus(1).request(), {"n": [uid["v0"], uid["v1"], uid["v2"]]})
        assert kept == {"n": [uid["v2"]]}

    def test_drops_a_node_where_the_victims_free_too_little(self, busy):
        engine, uid = busy
        assert engine.preempt(pod("urgent").gpus(3).request(), {"n": [uid["v1"], uid["v2"]]}) == {}

    def test_needs_every_victim_when_the_pod_needs_the_whole_node(self, busy):
        engine, uid = busy
        victims = [uid["v0"], uid["v1"], uid["v2"]]
        assert engine.preempt(pod("urgent").gpus(4).request(), {"n": victims}) == {"n": victims}

    def test_does_not_change_the_books(self, busy):
        engine, uid = busy
        before = state_view(engine)
        engine.preempt(pod("urgent").gpus(2).request(), {"n": list(uid.values())})
        assert state_view(engine) == before
