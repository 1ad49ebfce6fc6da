"""The cache: API objects in, the Engine's books out, independent of event order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from scheduler.core.engine import Engine
from scheduler.core.view import state_view
from scheduler.kube.cache import NAMESPACES, NODES, PODS, CacheSettings, ClusterCache
from tests.kube.objects import bound, node, pod

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def cache() -> ClusterCache:
    return ClusterCache(Engine(), clock=lambda: NOW, settings=CacheSettings())


def gpus_of(c: ClusterCache, node_name: str) -> dict[str, list[str]]:
    view = state_view(c.engine)
    entry = next(n for n in view["nodes"] if n["name"] == node_name)
    return {g["uuid"]: g["pods"] for g in entry["gpus"] if g["pods"]}


def test_bound_pod_with_a_record_holds_exactly_the_recorded_gpus():
    c = cache()
    c.replace(NODES, [node("a", gpus=4)])
    p = bound(pod("p", gpus=2), "a", gpus="GPU-a-1,GPU-a-3")
    c.replace(PODS, [p])
    assert gpus_of(c, "a") == {"GPU-a-1": ["ml/p"], "GPU-a-3": ["ml/p"]}


def test_pending_pod_holds_nothing_even_with_a_stale_record():
    # what a crash between the binder's annotation patch and its Binding leaves behind
    c = cache()
    c.replace(NODES, [node("a", gpus=2)])
    p = pod("p", gpus=1, annotations={"gpusched.io/gpus": "GPU-a-0"})
    c.replace(PODS, [p])
    assert gpus_of(c, "a") == {}
    assert c.engine.pending(p["metadata"]["uid"]) is not None  # a bind after a restart finds it


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_pod_releases(phase):
    c = cache()
    c.replace(NODES, [node("a", gpus=2)])
    p = bound(pod("p", gpus=1), "a", gpus="GPU-a-0")
    c.replace(PODS, [p])
    done = orjson.loads(orjson.dumps(p))
    done["status"]["phase"] = phase
    c.apply(PODS, "MODIFIED", done)
    assert gpus_of(c, "a") == {}
    assert c.engine.state.cpu_free[c.engine.state.index["a"]] == 64000


def test_deleted_pod_releases():
    c = cache()
    c.replace(NODES, [node("a", gpus=2)])
    p = bound(pod("p", gpus=1), "a", gpus="GPU-a-0")
    c.apply(PODS, "ADDED", p)
    c.apply(PODS, "DELETED", p)
    assert gpus_of(c, "a") == {} and not c.engine.allocations


def test_pods_of_other_schedulers_count_cpu_memory_and_gpus():
    c = cache()
    c.replace(NODES, [node("a", gpus=4)])
    other = pod("other", gpus=2, cpu="8", scheduler="default-scheduler", node_name="a")
    c.replace(PODS, [other])
    assert gpus_of(c, "a") == {"GPU-a-0": ["ml/other"], "GPU-a-1": ["ml/other"]}
    assert c.engine.state.cpu_free[c.engine.state.index["a"]] == 64000 - 8000
    assert c.state_section()["kube"]["boundByOtherSchedulers"] == 1


def test_a_record_written_later_replaces_the_guess():
    # the agent writes the devices the kubelet really gave the pod
    c = cache()
    c.replace(NODES, [node("a", gpus=4)])
    other = pod("other", gpus=1, scheduler="default-scheduler", node_name="a")
    c.replace(PODS, [other])
    assert gpus_of(c, "a") == {"GPU-a-0": ["ml/other"]}
    c.apply(PODS, "MODIFIED", bound(other, "a", gpus="GPU-a-2"))
    assert gpus_of(c, "a") == {"GPU-a-2": ["ml/other"]}


def test_a_record_on_a_guessed_gpu_moves_the_guess():
    c = cache()
    c.replace(NODES, [node("a", gpus=2)])
    other = pod("other", gpus=1, scheduler="default-scheduler", node_name="a")
    ours = pod("ours", gpus=1)
    c.replace(PODS, [other, ours])
    assert gpus_of(c, "a") == {"GPU-a-0": ["ml/other"]}
    c.apply(PODS, "MODIFIED", bound(ours, "a", gpus="GPU-a-0"))
    assert gpus_of(c, "a") == {"GPU-a-0": ["ml/ours"], "GPU-a-1": ["ml/other"]}
    assert c.discrepancies == {}


def test_stale_heartbeat_takes_the_node_out_until_the_agent_speaks_again():
    clock = [NOW]
    c = ClusterCache(Engine(), clock=lambda: clock[0], settings=CacheSettings(staleness=timedelta(minutes=2)))
    c.replace(NODES, [node("a", gpus=2, heartbeat="2026-01-01T12:00:00Z")])
    assert "unavailable" not in state_view(c.engine)["nodes"][0]
    clock[0] = NOW + timedelta(minutes=3)
    c.sweep()
    assert state_view(c.engine)["nodes"][0]["unavailable"] == "gpusched agent on node a silent for 3m"
    c.apply(NODES, "MODIFIED", node("a", gpus=2, heartbeat="2026-01-01T12:03:00Z"))
    assert "unavailable" not in state_view(c.engine)["nodes"][0]


def test_unreadable_agent_annotation_falls_back_to_labels_and_takes_the_node_out():
    c = cache()
    broken = node("a", gpus=2)
    broken["metadata"]["annotations"]["gpusched.io/gpus"] = "{not json"
    c.replace(NODES, [broken])
    assert "not JSON" in state_view(c.engine)["nodes"][0]["unavailable"]


def test_relist_deletes_what_is_gone():
    c = cache()
    c.replace(NODES, [node("a", gpus=1), node("b", gpus=1)])
    p = bound(pod("p", gpus=1), "a", gpus="GPU-a-0")
    c.replace(PODS, [p])
    c.replace(NODES, [node("a", gpus=1)])
    c.replace(PODS, [])
    assert [n["name"] for n in state_view(c.engine)["nodes"]] == ["a"]
    assert not c.engine.allocations


def test_team_from_pod_label_then_namespace_label_then_namespace():
    c = cache()
    c.replace(NAMESPACES, [{"metadata": {"name": "vision", "labels": {"gpusched.io/team": "cv"}}}])
    assert c.team_of("vision", {"gpusched.io/team": "special"}) == "special"
    assert c.team_of("vision", {}) == "cv"
    assert c.team_of("other", {}) == "other"


def _objects():
    nodes = [node("a", gpus=4), node("b", gpus=2, sharing="mps"), node("c")]
    pods = [
        bound(pod("w1", gpus=2), "a", gpus="GPU-a-2,GPU-a-3"),
        bound(pod("s1", milli=300, gpu_memory=8192), "b", gpus="GPU-b-0",
              gpu_milli="300", gpu_memory="8192", mps_thread_pct="30"),
        pod("f1", gpus=1, scheduler="default-scheduler", node_name="a", created="2026-01-01T00:00:01Z"),
        pod("f2", gpus=1, scheduler="default-scheduler", node_name="a", created="2026-01-01T00:00:02Z"),
        pod("cpu", cpu="3", scheduler="default-scheduler", node_name="c"),
        pod("pending", gpus=1),
    ]
    return nodes, pods


@pytest.mark.parametrize("order", list(itertools.islice(itertools.permutations(range(6)), 0, 720, 97)))
def test_books_do_not_depend_on_event_order(order):
    nodes, pods = _objects()
    listed = cache()
    listed.replace(NODES, nodes)
    listed.replace(PODS, pods)
    streamed = cache()
    streamed.replace(NODES, [])
    streamed.replace(PODS, [])
    for i in order:
        streamed.apply(PODS, "ADDED", pods[i])
    for n in nodes:
        streamed.apply(NODES, "ADDED", n)
    assert state_view(streamed.engine) == state_view(listed.engine)
    assert streamed.state_section() == listed.state_section()
