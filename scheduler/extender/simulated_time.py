"""Simulated time, for an extender a simulation drives from outside (`serve --cluster --virtual-clock`).

A simulator replaying a trace against an extender it did not start (`simulate --extender-url`) needs
that extender to live in the trace's time, as the in-process and loopback modes do: gang
reservations end when the trace's clock passes their deadline (not minutes of wall time later, or
never), and a pod the simulated kube-scheduler turned away in its own filters is seen pending, as
the Kubernetes pod watch would see it, so that reclaim can work for it. Two verbs, served only in
this mode (a cluster's extender keeps wall time and watches pods):

    POST {prefix}/clock    {"Now": seconds}   the time is now `Now` (it never goes back);
                                               reservations due by then end
    POST {prefix}/pending  {"Pod": pod}        the pod is pending (`Engine.observe_pending`)
    POST {prefix}/gpu-health  {"Node": name, "UnhealthyGPUs": [index, ...]}
                                               the trace failed (or repaired) GPUs: the node's
                                               agent would report it; a static cluster has none

Both answer {"Error": ""} or {"Error": "why"}; a body that is not such a message is a 400.
"""

from __future__ import annotations

import math
from dataclasses import replace

import orjson

from scheduler.core.request import InvalidRequest, parse_pod
from scheduler.extender import wire
from scheduler.extender.service import ExtenderService


def state_section(service: ExtenderService) -> dict:
    """What /state adds in this mode; `simulate --extender-url` refuses an extender without it, or
    with another seed than the run's (policies' tie-breaks are drawn from it)."""
    return {"clock": "simulated", "now": service.engine.gates.current_time(), "seed": service.engine.settings.seed}


def decode_clock(body: bytes) -> float:
    fields = _object(body)
    now = fields.get("Now")
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now) or now < 0:
        raise wire.WireError("'Now' must be a finite number of seconds, at least 0")
    return float(now)


def advance(service: ExtenderService, now: float) -> bytes:
    service.expire(now)
    return wire.encode_binding_result()


def decode_pending(body: bytes) -> dict:
    pod = _object(body).get("Pod")
    if not isinstance(pod, dict):
        raise wire.WireError("'Pod' must be a Pod object")
    return pod


def pending(service: ExtenderService, pod: dict) -> bytes:
    try:
        request = parse_pod(pod)
    except InvalidRequest as e:
        return wire.encode_binding_result(f"invalid GPU request: {e}")
    service.observe_pending(request)
    return wire.encode_binding_result()


def decode_gpu_health(body: bytes) -> tuple[str, frozenset[int]]:
    fields = _object(body)
    node, unhealthy = fields.get("Node"), fields.get("UnhealthyGPUs")
    if not isinstance(node, str) or not node:
        raise wire.WireError("'Node' must be a node name")
    if not isinstance(unhealthy, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in unhealthy):
        raise wire.WireError("'UnhealthyGPUs' must be a list of GPU indices")
    return node, frozenset(unhealthy)


def set_gpu_health(service: ExtenderService, change: tuple[str, frozenset[int]]) -> bytes:
    name, unhealthy = change
    row = service.engine.state.index.get(name)
    if row is None:
        return wire.encode_binding_result(f"no node {name}")
    node = service.engine.state.specs[row]
    gpus = tuple(replace(g, healthy=g.index not in unhealthy,
                         unhealthy_reason="simulated GPU failure" if g.index in unhealthy else "")
                 for g in node.gpus)
    service.engine.upsert_node(replace(node, gpus=gpus))
    return wire.encode_binding_result()


def _object(body: bytes) -> dict:
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise wire.WireError("body is not JSON") from None
    if not isinstance(fields, dict):
        raise wire.WireError("body must be a JSON object")
    return fields
