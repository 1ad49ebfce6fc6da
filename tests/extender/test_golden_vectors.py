"""The reference wire vectors, decoded, encoded and replayed end to end over real HTTP.

The vectors come from the kube-scheduler extender types (no JSON tags, nothing omitted). Our
answers must have exactly their shape; where the answer depends on the cluster, the cluster in
tests/golden/cluster.yaml is built so the vector's answer is the right one, and we must give it.
"""

import json

import orjson
import pytest

from scheduler.extender import wire
from tests.extender.conftest import GOLDEN

VECTORS = GOLDEN / "extender-vectors"


def vector(name: str):
    return json.loads((VECTORS / name).read_text())


def body(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_decode_filter_request_with_names():
    args = wire.decode_extender_args(body("filter-request.json"))
    assert args.names == ["gpu-node-a", "gpu-node-b", "gpu-node-c", "cpu-node-1"]
    assert args.nodes is None and args.pod["metadata"]["name"] == "trainer-0"


def test_decode_filter_request_with_full_nodes():
    args = wire.decode_extender_args(body("filter-request-full-nodes.json"))
    assert args.node_names is None and args.names == ["gpu-node-a", "gpu-node-b", "cpu-node-1"]


def test_decode_bind_and_preempt():
    bind = wire.decode_binding_args(body("bind-request.json"))
    assert (bind.pod_name, bind.pod_namespace, bind.node) == ("trainer-0", "ml-team", "gpu-node-a")
    meta = wire.decode_preemption_args(body("preempt-request.json"))
    full = wire.decode_preemption_args(body("preempt-request-full-victims.json"))
    assert meta.victims == {"gpu-node-b": ["aa11bb22-0000-4000-8000-000000000001", "aa11bb22-0000-4000-8000-000000000002"],
                            "gpu-node-c": ["cc33dd44-0000-4000-8000-000000000003"]}
    assert meta.num_pdb_violations == {"gpu-node-b": 0, "gpu-node-c": 1}
    assert full.victims == {"gpu-node-b": meta.victims["gpu-node-b"]}


@pytest.mark.parametrize("name", ["filter-response.json", "filter-response-full-nodes.json", "bind-response.json",
                                  "preempt-response.json", "prioritize-response.json"])
def test_encoding_reproduces_each_response_vector(name):
    expected = vector(name)
    if name.startswith("filter"):
        nodes = expected["Nodes"]["items"] if expected["Nodes"] else None
        passed = expected["NodeNames"] or [n["metadata"]["name"] for n in nodes]
        encoded = wire.encode_filter_result(passed=passed, failed=expected["FailedNodes"],
                                            unresolvable=expected["FailedAndUnresolvableNodes"], nodes=nodes)
    elif name.startswith("bind"):
        encoded = wire.encode_binding_result(expected["Error"])
    elif name.startswith("preempt"):
        victims = {n: [p["UID"] for p in v["Pods"]] for n, v in expected["NodeNameToMetaVictims"].items()}
        pdb = {n: v["NumPDBViolations"] for n, v in expected["NodeNameToMetaVictims"].items()}
        encoded = wire.encode_preemption_result(victims, pdb)
    else:
        encoded = wire.encode_host_priorities([(p["Host"], p["Score"]) for p in expected])
    assert orjson.loads(encoded) == expected
    assert list(orjson.loads(encoded)) == list(expected)  # same keys, same order


async def post(http, url, verb, name):
    async with http.post(f"{url}/{verb}", data=body(name), headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200
        return await r.json()


async def test_filter_end_to_end_gives_the_vector(server):
    _, url, http = server
    assert await post(http, url, "filter", "filter-request.json") == vector("filter-response.json")


async def test_filter_with_full_nodes_gives_the_vector(server):
    _, url, http = server
    assert await post(http, url, "filter", "filter-request-full-nodes.json") == vector("filter-response-full-nodes.json")


@pytest.mark.parametrize("policy", ["spread"])
async def test_prioritize_end_to_end_has_the_vector_shape(server):
    _, url, http = server
    expected = vector("prioritize-response.json")
    got = await post(http, url, "prioritize", "prioritize-request.json")
    assert [p["Host"] for p in got] == [p["Host"] for p in expected]
    assert all(type(p["Score"]) is int and 0 <= p["Score"] <= 10 for p in got)
    # as in the vector, gpu-node-a (3 free GPUs) beats gpu-node-c (1 free) under spread
    assert got[0]["Score"] == 10 > got[1]["Score"]


async def test_bind_after_filter_gives_the_vector(server):
    service, url, http = server
    await post(http, url, "filter", "filter-request.json")
    assert await post(http, url, "bind", "bind-request.json") == vector("bind-response.json")
    assert service.engine.allocations["6f1c2b9e-3d4a-4c5b-9e8f-0a1b2c3d4e5f"].node == "gpu-node-a"


@pytest.mark.parametrize("request_name", ["preempt-request.json", "preempt-request-full-victims.json"])
async def test_preempt_end_to_end_gives_the_vector(server, request_name):
    _, url, http = server
    assert await post(http, url, "preempt", request_name) == vector("preempt-response.json")
