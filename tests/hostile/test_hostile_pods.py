"""The guard of issue 13: hostile pods through every verb of a real extender, and it holds.

Each example is a valid pod (whole GPUs, a share, a gang member, CPU only) with up to three
hostile values planted anywhere a pod carries one (quantities huge, negative, long-digit, with
huge exponents, NaN-like, Unicode digits or of the wrong JSON type; annotations, labels and
metadata huge, odd, Unicode or of the wrong type). It goes through filter, prioritize, bind,
preempt and the admission webhook's /mutate, over loopback, as kube-scheduler and the API
server would send it. The pods of issue 13's reports go first, then hypothesis's. Asserted:
- no 500 and no traceback or "internal error" in any answer; a 400 has a one-line reason;
- a request refused for its input changes nothing in `/state` (nor does prioritize, preempt
  or /mutate, ever);
- `/state` never shows anything negative or over capacity;
- the server's event loop is never blocked long: the slowest `/healthz` a concurrent poller saw
  during the whole run stays under LATENCY_BOUND_S (the target is LATENCY_TARGET_S, 100 ms);
- the state file written meanwhile restores the same books.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core import contract as c
from tests.builders import pod
from tests.hostile.checks import assert_answered, assert_books_sane, refused_filter
from tests.hostile.conftest import LATENCY_BOUND_S, LATENCY_TARGET_S, Hostile, make_service
from tests.hostile.values import hostile_pods

UNKNOWN_NODE = "no-such-node"


def reported() -> list[tuple[str, dict[str, Any]]]:
    """The pods of issue 13's reports, in the order they did damage (books accumulate between them)."""
    def gang(name: str, size: str, **annotations: str) -> dict[str, Any]:
        built = pod(name).gpus(8).label(c.GANG_LABEL, "walker").annotate(c.GANG_SIZE_ANNOTATION, size)
        for key, value in annotations.items():
            built.annotate(key, value)
        return built.build()

    def with_cpu(name: str, cpu: str, builder=None) -> dict[str, Any]:
        built = (builder or pod(name).share(500)).build()
        for part in ("limits", "requests"):
            built["spec"]["containers"][0]["resources"][part]["cpu"] = cpu
        return built

    return [
        ("1: a gang timeout of 10^309 s", gang("walker-0", "1", **{c.GANG_TIMEOUT_ANNOTATION: "1" + "0" * 309})),
        ("2: cpu 1e10000000", with_cpu("exp-7", "1e10000000")),
        ("2: cpu 1e100000000", with_cpu("exp-8", "1e100000000")),
        ("3: 10,000 model globs", pod("globs").gpus(1).models(",".join(f"A{i:05d}*" for i in range(10_000))).build()),
        ("8: cpu -100 with a share", with_cpu("negative", "-100")),
        ("8: a 60-CPU share", with_cpu("sixty-a", "60")),
        ("8: another 60-CPU share", with_cpu("sixty-b", "60")),
        ("12: cpu of 5,000 digits", with_cpu("digits", "1" + "0" * 5000)),
        ("12: nvidia.com/gpu 1e3000000", pod("gpus").gpus("1e3000000").build()),
        ("14: a member saying size 3", gang("half-1", "3")),
        ("14: a member saying size 1", gang("half-0", "1")),
        ("quoting: a 100 KiB policy", pod("policy").gpus(1).policy("x" * 100_000).build()),
        ("quoting: a 100 KiB sharing mode", pod("sharing").share(500).annotate(c.SHARING_ANNOTATION, "y" * 100_000).build()),
    ]


def _field(obj: Any, key: str) -> Any:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta.get(key) if isinstance(meta, dict) else None


def review(obj: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r-1", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "ml", "object": obj}}


def through_every_verb(hostile: Hostile, obj: Any, what: str, target: str) -> None:
    """filter, prioritize, bind, preempt, /mutate for one pod, checking every answer and the books."""
    names = [*hostile.names, UNKNOWN_NODE]
    hostile.poller.label = what
    before = hostile.state()

    status, body = hostile.post("/filter", {"Pod": obj, "NodeNames": names})
    answer = assert_answered("filter", status, body)
    after_filter = hostile.state()
    if refused_filter(status, answer):
        assert after_filter == before, f"a refused filter changed the books ({what})"
    passed = (answer or {}).get("NodeNames") or []

    status, body = hostile.post("/prioritize", {"Pod": obj, "NodeNames": names})
    assert_answered("prioritize", status, body)
    assert hostile.state() == after_filter, f"prioritize changed the books ({what})"

    binding = {"PodName": _field(obj, "name"), "PodNamespace": _field(obj, "namespace"),
               "PodUID": _field(obj, "uid"), "Node": passed[0] if passed else target}
    status, body = hostile.post("/bind", binding)
    answer = assert_answered("bind", status, body)
    after_bind = hostile.state()
    if status != 200 or answer["Error"]:
        assert after_bind == after_filter, f"a refused bind changed the books ({what}): {answer}"

    victims = {target: {"Pods": [{"UID": "uid-p0-0"}, {"UID": "x"}], "NumPDBViolations": 0}}
    status, body = hostile.post("/preempt", {"Pod": obj, "NodeNameToMetaVictims": victims})
    assert_answered("preempt", status, body)
    status, body = hostile.post("/mutate", review(obj))
    assert_answered("mutate", status, body)
    after = hostile.state()
    assert after == after_bind, f"preempt or /mutate changed the books ({what})"
    assert_books_sane(after)


def release(hostile: Hostile, uids: set[str]) -> None:
    for uid in sorted(uids):
        assert_answered("release", *hostile.post("/release", {"PodUID": uid}))
    uids.clear()
    assert_books_sane(hostile.state())


def test_hostile_pods_through_every_verb(hostile):
    touched: set[str] = set()
    for what, obj in reported():
        through_every_verb(hostile, obj, what, hostile.names[0])
        touched.add(obj["metadata"]["uid"])
    release(hostile, touched)

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(case=hostile_pods(), target=st.sampled_from([*hostile.names, UNKNOWN_NODE]), tidy=st.booleans())
    def one_pod(case, target, tidy):
        obj, planted = case
        through_every_verb(hostile, obj, f"planted {planted} in {orjson.dumps(obj)[:200]!r}", target)
        uid = _field(obj, "uid")
        if isinstance(uid, str) and uid:
            touched.add(uid)
        if tidy:  # pods leave now and then, so the cluster does not stay full of reservations
            release(hostile, touched)

    one_pod()
    poller = hostile.poller
    assert poller.answered > 10
    assert poller.worst < LATENCY_BOUND_S, (
        f"/healthz took {poller.worst * 1000:.0f} ms (target {LATENCY_TARGET_S * 1000:.0f} ms) during {poller.worst_during}")
    last = hostile.state()
    hostile.shutdown()
    restored = make_service(hostile.state_file)()
    assert orjson.loads(orjson.dumps(restored.state())) == last, "the state file does not restore the books"
