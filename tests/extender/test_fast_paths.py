"""The fast paths answer exactly as the verbs did before them (tests/extender/reference_verbs.py).

Random scripts of filter, prioritize and bind (cycle_script.py) go through the real app over
loopback HTTP and through the reference verbs; every answer's bytes and the rejection counters
must be equal. Bodies of every shape go through both decoders, which must agree on the result
or on the error.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.big_cluster import pod_json
from scheduler.core.request import InvalidRequest, parse_pod
from scheduler.extender import wire
from scheduler.extender.pod_cache import PodCache
from tests.extender.cycle_script import replay, replay_reference


@settings(max_examples=12, deadline=None)
@given(policy=st.sampled_from(["fgd-plus", "fgd", "binpack", "spread", "bestfit"]), seed=st.integers(0, 10**6),
       decide_in_filter=st.booleans())
def test_answers_and_counters_equal_the_reference(policy, seed, decide_in_filter):
    fast = asyncio.run(replay(policy, seed, count=40, decide_in_filter=decide_in_filter))
    reference = replay_reference(policy, seed, count=40, decide_in_filter=decide_in_filter)
    assert fast[0] == reference[0]
    assert fast[1] == reference[1]


def _decoded(body: bytes, decode) -> object:
    try:
        args = decode(body)
    except wire.WireError as e:
        return ("error", str(e))
    return (args.pod, args.node_names, args.nodes)


_KEYS = st.sampled_from(["Pod", "pod", "POD", "NodeNames", "nodenames", "Nodes", "nodes", "Extra"])
_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=4), st.lists(st.text(max_size=6), max_size=4),
                    st.lists(st.integers(), max_size=2), st.just({"metadata": {"name": "p"}}),
                    st.just({"items": [{"metadata": {"name": "a"}}]}), st.just({"items": [{}]}))


@st.composite
def bodies(draw) -> bytes:
    if draw(st.booleans()):
        message = {"Pod": pod_json(draw(st.integers(0, 100)), np.random.default_rng(draw(st.integers(0, 100)))),
                   "Nodes": None, "NodeNames": draw(st.lists(st.text(max_size=8), max_size=6))}
        for key in draw(st.lists(_KEYS, max_size=2)):
            message[key] = draw(_VALUES)
        body = json.dumps(message).encode()
    else:
        body = b"{" + b",".join(orjson.dumps(k) + b":" + json.dumps(draw(_VALUES)).encode()
                                for k in draw(st.lists(_KEYS, max_size=4))) + b"}"
    if draw(st.integers(0, 4)) == 0:  # damage a byte: invalid JSON, odd numbers, bad UTF-8
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.sampled_from(b'"{}[],:0e9\\\xff\x00 '))]) + body[at + 1:]
    return body


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_the_typed_decoder_agrees_with_the_lenient_one(body):
    assert _decoded(body, wire.decode_extender_args) == _decoded(body, wire._decode_extender_args)


@pytest.mark.parametrize("body", [
    b'{"Pod":{"metadata":{}, "x": 1e999},"NodeNames":["a"]}',
    b'{"Pod":{"a":"\xff"},"NodeNames":["a"]}',
    b'{"Pod":{"a":1},"Pod":{"b":2},"NodeNames":["a"]}',
    b'{"Pod":{"metadata":{}},"NodeNames":["a","b"],"NodeNames":null}',
    b'{"Pod":[],"NodeNames":["a"]}',
    b'\xef\xbb\xbf{"Pod":{"metadata":{}},"NodeNames":["a"]}',
    b'{"Pod":' + b"[" * 5000 + b"]" * 5000 + b',"NodeNames":["a"]}',
], ids=["infinite-number", "bad-utf8-in-pod", "pod-twice", "names-then-null", "pod-not-object", "bom", "deep-nesting"])
def test_bodies_the_typed_decoder_reads_differently_take_the_lenient_path(body):
    assert _decoded(body, wire.decode_extender_args) == _decoded(body, wire._decode_extender_args)


def test_a_cached_pod_is_the_parse_of_its_bytes_refusals_included():
    cache = PodCache(limit=2)
    good = pod_json(1, np.random.default_rng(1))
    bad = {**good, "spec": {"containers": [{"name": "c", "resources": {"limits": {"gpusched.io/gpu-milli": "5000"}}}]}}
    for _ in range(2):
        assert cache.parse(good, orjson.dumps(good)) == parse_pod(good)
        with pytest.raises(InvalidRequest) as cached:
            cache.parse(bad, orjson.dumps(bad))
        with pytest.raises(InvalidRequest) as parsed:
            parse_pod(bad)
        assert str(cached.value) == str(parsed.value)
    for i in range(3):  # bounded: the oldest bodies go
        other = pod_json(10 + i, np.random.default_rng(i))
        cache.parse(other, orjson.dumps(other))
    assert len(cache._parsed) == 2
