"""Bodies that are not what kube-scheduler or the API server send, to every POST route.

Random bytes, broken or truncated JSON, JSON of the wrong shape or with the right keys holding
the wrong types, numbers past 64 bits, deep nesting, oversized bodies. Each gets a 400 (or 413)
with a one-line reason, or a 200 that refuses; never a 500 or a traceback, and the books never
change. The event loop stays responsive meanwhile (the concurrent /healthz poller).
"""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.checks import assert_answered
from tests.hostile.conftest import LATENCY_BOUND_S
from tests.hostile.values import ODD_JSON, STRINGS

ROUTES = {
    "/filter": ["Pod", "NodeNames", "Nodes"],
    "/prioritize": ["Pod", "NodeNames", "Nodes"],
    "/bind": ["PodName", "PodNamespace", "PodUID", "Node"],
    "/preempt": ["Pod", "NodeNameToVictims", "NodeNameToMetaVictims"],
    "/release": ["PodUID"],
    "/mutate": ["apiVersion", "kind", "request"],
}
SPECIAL_BODIES = [
    b"", b"null", b"[]", b"{}", b'"x"', b"\xff\xfe\x00", b"{" * 10, b"[" * 100_000 + b"]" * 100_000,
    b'{"Pod": ' + b"1" + b"0" * 5000 + b"}", b'{"Pod": {"metadata": {"name": "' + b"x" * 1_000_000 + b'"}}}',
    b'{"Pod": NaN}', b'{"PodUID": "u", "PodUID": 1}', b'{"pod": {}, "POD": [], "NodeNames": ["a100-0"]}',
]


@st.composite
def shaped(draw, keys: list[str]) -> bytes:
    """The route's own keys (in any letter case), holding odd JSON or hostile strings."""
    fields = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)):
        spelled = draw(st.sampled_from([key, key.lower(), key.upper()]))
        fields[spelled] = draw(ODD_JSON | STRINGS | st.lists(STRINGS, max_size=3)
                               | st.dictionaries(STRINGS, ODD_JSON, max_size=2))
    return orjson.dumps(fields)


@st.composite
def requests(draw) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(ROUTES)))
    body = draw(st.one_of(shaped(ROUTES[path]), st.sampled_from(SPECIAL_BODIES), st.binary(max_size=64),
                          ODD_JSON.map(orjson.dumps)))
    return path, body


def test_garbage_bodies_to_every_route(hostile):
    before = hostile.state()
    status, _ = hostile.public.call("POST", "/mutate", b"{" + b" " * (9 << 20) + b"}")
    assert status == 413  # over the webhook listener's 8 MiB: refused before anyone reads it as JSON
    for path, method in (("/filter", "GET"), ("/nowhere", "POST"), ("/state", "POST")):
        assert hostile.verbs.call(method, path)[0] in (404, 405)

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(request=requests())
    def one_body(request):
        path, body = request
        hostile.poller.label = f"{path} {body[:200]!r}"
        client = hostile.public if path == "/mutate" else hostile.verbs
        status, answer = client.call("POST", path, body)
        assert_answered(path, status, answer)
        assert hostile.state() == before, f"{path} changed the books with {body[:200]!r}"

    one_body()
    assert hostile.poller.worst < LATENCY_BOUND_S, (
        f"/healthz took {hostile.poller.worst * 1000:.0f} ms during {hostile.poller.worst_during}")
