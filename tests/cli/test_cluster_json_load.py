"""A JSON cluster file read node by node gives what reading it whole gave: the same spec, and for
a broken file the same one-line error."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.big_cluster import cluster_file_dict
from scheduler.clusterfile import ClusterFileError, load_cluster, parse_cluster


def _whole(path) -> object:
    """The reading before: decode the whole file, then parse (errors prefixed with the path)."""
    text = path.read_bytes()
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    try:
        return parse_cluster(data)
    except ClusterFileError as e:
        return f"{path}: {e}"


def _loaded(path) -> object:
    try:
        return load_cluster(path)
    except ClusterFileError as e:
        return "not valid JSON" if "not valid JSON" in str(e) else str(e)


def test_a_big_file_reads_the_same_either_way(tmp_path):
    data = cluster_file_dict(60)
    data["pods"] = [{"namespace": "ml", "name": "p0", "uid": "u0", "node": "node-00000", "gpus": ["GPU-node-00000-1"],
                     "gpuMilli": 500, "gpuMemoryMiB": 1024, "cpuMilli": 1000, "memoryMiB": 2048}]
    data["teams"] = {"a": {"guaranteed": 1}}
    path = tmp_path / "cluster.json"
    path.write_bytes(orjson.dumps(data))
    assert load_cluster(path) == _whole(path)


_NODE = {"name": "a", "cpuMilli": 1000, "memoryMiB": 1024, "gpus": {"count": 2, "model": "A100", "memoryMiB": 80}}


@settings(max_examples=150, deadline=None)
@given(nodes=st.one_of(st.just([_NODE]), st.just([]), st.none(), st.just({"a": 1}),
                       st.lists(st.sampled_from([_NODE, {**_NODE, "name": "b"}, {**_NODE, "cpuMilli": -1}, 3,
                                                 {**_NODE, "gpu": 1}, {"name": "c"}]), max_size=3)),
       pods=st.sampled_from([None, [], [{"namespace": "n", "name": "p", "node": "a"}], [{"node": "zz"}], "x"]),
       damage=st.one_of(st.none(), st.tuples(st.integers(0, 400), st.sampled_from(b'"{}[],:0e9\\\xff '))))
def test_any_file_reads_the_same_either_way(tmp_path_factory, nodes, pods, damage):
    data = {"nodes": nodes} if pods is None else {"nodes": nodes, "pods": pods}
    body = json.dumps(data).encode()
    if damage is not None:
        at = damage[0] % len(body)
        body = body[:at] + bytes([damage[1]]) + body[at + 1:]
    path = tmp_path_factory.mktemp("c") / "cluster.json"
    path.write_bytes(body)
    assert _loaded(path) == _whole(path)


@pytest.mark.parametrize("body", [b'{"nodes": [{"name": "a", "cpuMilli": 1e999}]}', b"[1, 2]", b'{"nodes": 5}'])
def test_files_the_item_reader_cannot_take_fall_back_to_the_whole_file(tmp_path, body):
    path = tmp_path / "cluster.json"
    path.write_bytes(body)
    assert _loaded(path) == _whole(path)
