"""The real server on loopback, driven over HTTP as kube-scheduler drives it, and abused."""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.extender_client import ExtenderClient
from tests.builders import pod
from tests.extender.conftest import EXAMPLES


@pytest.fixture
def cluster_path():
    return EXAMPLES / "mixed.yaml"


async def get(http, url, path):
    async with http.get(url + path) as response:
        return response.status, await response.read()


async def test_a_scheduling_cycle_like_kube_scheduler(server):
    service, url, http = server
    nodes = list(service.engine.state.index)
    async with ExtenderClient(url) as client:
        cycle = await client.schedule_one(pod("train").gpus(4).models("H100*").build(), nodes)
        assert cycle.node == "h100-0"
        assert cycle.unresolvable["t4-0"] == "GPU model not allowed by the pod"
        share = await client.schedule_one(pod("infer").share(300, memory_mib=2048).mps().build(), nodes)
        assert share.node in {"t4-0", "t4-1"}
    _status, body = await get(http, url, "/state")
    state = json.loads(body)
    h100 = next(n for n in state["nodes"] if n["name"] == "h100-0")
    assert sum(1 for g in h100["gpus"] if g["pods"] == ["ml/train"]) == 4


async def test_health_readiness_and_metrics(server):
    service, url, http = server
    assert (await get(http, url, "/healthz"))[0] == 200
    assert (await get(http, url, "/readyz"))[0] == 200
    service.ready = False
    assert (await get(http, url, "/readyz"))[0] == 503
    async with ExtenderClient(url) as client:
        await client.schedule_one(pod("p").gpus(1).build(), list(service.engine.state.index))
    status, text = await get(http, url, "/metrics")
    metrics = text.decode()
    assert status == 200
    assert 'gpusched_extender_request_duration_seconds_count{verb="filter"} 1.0' in metrics
    assert "gpusched_pods_bound_total 1.0" in metrics
    assert 'gpusched_gpus_allocated{model="NVIDIA-A100-SXM4-80GB"}' in metrics
    assert 'gpusched_filter_rejections_total{reason="no_gpus"} 1.0' in metrics


async def test_invalid_pods_get_a_reason_on_every_node_not_an_error(server):
    service, url, _ = server
    nodes = list(service.engine.state.index)
    async with ExtenderClient(url) as client:
        result = await client.filter(pod("bad").gpus(1).share(500).build(), nodes)
        assert result["Error"] == "" and result["NodeNames"] == []
        assert set(result["FailedAndUnresolvableNodes"]) == set(nodes)
        assert "asks for whole GPUs (nvidia.com/gpu: 1) and a share" in result["FailedAndUnresolvableNodes"]["cpu-0"]
        assert await client.bind(pod("never").gpus(1).build(), "a100-0") != ""


async def test_release_gives_capacity_back_over_http(server):
    _service, url, _ = server
    built = pod("p").gpus(8).models("A100*").build()
    async with ExtenderClient(url) as client:
        first = await client.schedule_one(built, ["a100-0"])
        assert first.node == "a100-0"
        again = pod("q").gpus(8).build()
        assert (await client.schedule_one(again, ["a100-0"])).node is None
        assert await client.release(built["metadata"]["uid"]) == ""
        assert (await client.schedule_one(again, ["a100-0"])).node == "a100-0"
        assert "no pod with UID" in await client.release("nobody")


HOSTILE = {
    "not json": b"{nope",
    "empty": b"",
    "a list": b"[]",
    "null": b"null",
    "string pod": b'{"Pod": "x", "Nodes": null, "NodeNames": []}',
    "no nodes at all": b'{"Pod": {}, "Nodes": null, "NodeNames": null}',
    "names not strings": b'{"Pod": {}, "Nodes": null, "NodeNames": [1, 2]}',
    "nodelist without items": b'{"Pod": {}, "Nodes": {"items": 3}, "NodeNames": null}',
    "deep nesting": b'{"Pod": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "huge number": b'{"PodName": 1e400}',
    "bind missing uid": b'{"PodName": "a", "PodNamespace": "b", "Node": "c"}',
    "bind empty strings": b'{"PodName": "", "PodNamespace": "", "PodUID": "", "Node": ""}',
    "victims not a map": b'{"Pod": {}, "NodeNameToVictims": null, "NodeNameToMetaVictims": [1]}',
    "victim without uid": b'{"Pod": {}, "NodeNameToVictims": null, "NodeNameToMetaVictims": {"n": {"Pods": [{}]}}}',
    "invalid utf8": b'{"Pod": "\xff\xfe"}',
}


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind", "preempt", "release"])
@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_bodies_get_400_and_change_nothing(server, verb, payload):
    service, url, http = server
    before = service.state()
    async with http.post(f"{url}/{verb}", data=payload) as response:
        assert response.status in (200, 400), response.status
        text = await response.text()
        if response.status == 400:
            assert "\n" not in text.strip() and json.loads(text)["Error"].startswith(verb)
    assert service.state() == before


def json_values():
    return st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=20)


@st.composite
def garbled_pods(draw):
    built = pod("fuzz").gpus(1).build()
    path = draw(st.sampled_from([("metadata",), ("spec",), ("spec", "containers"), ("metadata", "annotations"),
                                 ("spec", "containers", 0, "resources"), ("spec", "containers", 0, "resources", "limits"),
                                 ("metadata", "labels"), ("spec", "priority")]))
    target = built
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = draw(json_values())
    return built


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(garbled=garbled_pods(), verb=st.sampled_from(["filter", "prioritize", "preempt"]))
async def test_garbled_pods_never_produce_a_500_or_a_change(server, garbled, verb):
    service, url, http = server
    before = service.state()
    key = "NodeNameToMetaVictims" if verb == "preempt" else "NodeNames"
    message = {"Pod": garbled, "Nodes": None, key: {"a100-0": {"Pods": [{"UID": "x"}]}} if verb == "preempt" else ["a100-0"]}
    async with http.post(f"{url}/{verb}", data=orjson.dumps(message)) as response:
        assert response.status == 200
        await response.read()
    assert service.state()["nodes"] == before["nodes"]


async def test_decide_in_filter_answers_the_one_best_node(server):
    service, url, _ = server
    nodes = list(service.engine.state.index)
    built = pod("p").gpus(1).build()
    expected = max(sorted(n for n, s in service.engine.scores(pod("probe").gpus(1).request(), nodes) if s is not None),
                   key=dict(service.engine.scores(pod("probe2").gpus(1).request(), nodes)).get)
    service.decide_in_filter = True
    async with ExtenderClient(url) as client:
        result = await client.filter(built, nodes)
    assert result["NodeNames"] == [expected]
    assert "cpu-0" in result["FailedAndUnresolvableNodes"]  # the rejected keep their reasons
