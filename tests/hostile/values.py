"""Hostile values for every field a pod can carry: random and extreme, valid and not.

Strategies only (no server): quantities (huge, negative, long-digit, exponents, NaN-like, Unicode
digits, wrong JSON types), annotation and label values (huge, odd, Unicode, wrong types), and
pods built from a valid base with a few of those planted anywhere a pod carries them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from scheduler.core import contract as c

BIG_INT = "__big_int__"
"""A placeholder the client swaps for a 5,000-digit JSON number (orjson cannot encode one)."""

EXTREME_QUANTITIES = [
    "1e10000000", "1e100000000", "-1e100000000", "1e-100000000", "1e3000000", "1E400", "1e31", "1e-31",
    "1" + "0" * 5000, "9" * 5000, "0." + "0" * 3000 + "1", "-100", "-1", "-0", "0", "-1m", "-1Gi", "-1e3",
    "NaN", "nan", "Inf", "-Inf", "+Inf", "Infinity", "9223372036854775807", "9223372036854775808", "8Ei", "7Ei",
    "18446744073709551616", "1.", ".5", "5.e3", "1_000", "0x10", "１", "١٢", "4\n", " 4 ", "4\u00a0k", "", " ",
    "1e18", "9E", "1n", "100u", "500m", "64Gi", "4", BIG_INT,
]
ODD_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def long_text(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings up to a few hundred KiB, made cheaply by repetition (hypothesis draws short ones)."""
    return st.builds(lambda piece, times: piece * times, alphabet, st.integers(1, 60_000))


QUANTITY_TEXT = st.builds(
    lambda sign, whole, frac, tail: f"{sign}{whole}{frac}{tail}",
    st.sampled_from(["", "+", "-"]), st.text("0123456789", min_size=1, max_size=30),
    st.sampled_from(["", ".", ".5", ".000000001"]),
    st.one_of(st.sampled_from(["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u"]),
              st.integers(-(10**9), 10**9).map(lambda e: f"e{e}")))
NEGATIVE = st.one_of(st.integers(-(10**6), -1), st.integers(-(10**6), -1).map(str),
                     st.sampled_from(["-100", "-1m", "-60", "-1Gi", "-0.5", "-1e3"]))
QUANTITIES = st.one_of(
    st.sampled_from(EXTREME_QUANTITIES), NEGATIVE, QUANTITY_TEXT, st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), long_text(st.sampled_from("9-e.")),
    ODD_JSON)

EXTREME_STRINGS = [
    "", " ", ",", "!", "*", "?", "!*", "1" + "0" * 309, "١", "-1", "0", "1", "2", "3", "10000", "10001", "86400",
    "86401", "mps", "time-slicing", "any", "binpack", "fgd-plus", "tetris", "A100*,H100*", "!T4",
    ",".join(f"A{i}*" for i in range(10_000)), "A100[", "a" * 64, "\x00", "\n", "g\n", "é", "🚀", "ℌ100",
    "x" * 300_000,
]
STRINGS = st.one_of(st.sampled_from(EXTREME_STRINGS), st.text(max_size=40), long_text(st.text(max_size=4)))
ANNOTATION_KEYS = [c.MODEL_ANNOTATION, c.SHARING_ANNOTATION, c.POLICY_ANNOTATION, c.GANG_SIZE_ANNOTATION,
                   c.GANG_TIMEOUT_ANNOTATION, c.ASSIGNED_GPUS_ANNOTATION, "example.com/other"]
LABEL_KEYS = [c.GANG_LABEL, c.POD_GROUP_LABEL, c.TEAM_LABEL, "app"]
RESOURCES = ["cpu", "cpu", "cpu", "memory", "memory", c.GPU_RESOURCE, c.GPU_RESOURCE, c.MILLI_RESOURCE,
             c.GPU_MEMORY_RESOURCE, "ephemeral-storage", "example.com/widget", "", "🚀"]
"""Weighted by repetition: CPU and memory are what kube-scheduler's own checks and our books share."""


@st.composite
def base_pods(draw) -> dict[str, Any]:
    """A valid pod: whole GPUs, a share, or a gang member (gangs of a few small names, so members meet)."""
    name = f"p{draw(st.integers(0, 30))}"
    kind = draw(st.sampled_from(["whole", "share", "gang", "cpu"]))
    limits: dict[str, Any] = {"cpu": draw(st.sampled_from(["1", "500m", "4"])), "memory": "1Gi"}
    annotations: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    if kind in ("whole", "gang"):
        limits[c.GPU_RESOURCE] = str(draw(st.integers(1, 8)))
    elif kind == "share":
        limits[c.MILLI_RESOURCE] = str(draw(st.integers(1, 999)))
    if kind == "gang":
        labels[c.GANG_LABEL] = f"g{draw(st.integers(0, 3))}"
        annotations[c.GANG_SIZE_ANNOTATION] = str(draw(st.integers(1, 3)))
    if draw(st.booleans()):
        labels[c.TEAM_LABEL] = draw(st.sampled_from(["vision", "nlp"]))
    return {"metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}-{draw(st.integers(0, 3))}",
                         "annotations": annotations, "labels": labels},
            "spec": {"schedulerName": "gpu-scheduler",
                     "containers": [{"name": "main", "resources": {"limits": limits, "requests": dict(limits)}}]}}


def _plant(draw, pod: dict[str, Any]) -> str:
    """Put one hostile value somewhere in `pod`; returns where, for the failure report."""
    try:
        return _plant_in(draw, pod)
    except (TypeError, KeyError, IndexError, AttributeError):  # an earlier plant replaced the place itself
        return "nowhere"


def _plant_in(draw, pod: dict[str, Any]) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    container = spec["containers"][0]
    where = draw(st.sampled_from(["requests", "requests", "requests", "limits", "limits", "init", "overhead",
                                  "annotation", "annotation", "annotation", "label", "metadata", "priority",
                                  "container", "spec", "pod-field"]))
    if where in ("requests", "limits"):
        container["resources"][where][draw(st.sampled_from(RESOURCES))] = draw(QUANTITIES)
    elif where == "init":
        spec["initContainers"] = [{"name": draw(STRINGS | ODD_JSON), "resources": {
            draw(st.sampled_from(["limits", "requests"])): {draw(st.sampled_from(RESOURCES)): draw(QUANTITIES)}}}]
    elif where == "overhead":
        spec["overhead"] = draw(st.dictionaries(st.sampled_from(RESOURCES), QUANTITIES, max_size=2) | ODD_JSON)
    elif where == "annotation":
        meta["annotations"][draw(st.sampled_from(ANNOTATION_KEYS) | st.text(max_size=8))] = draw(STRINGS)
    elif where == "label":
        meta["labels"][draw(st.sampled_from(LABEL_KEYS))] = draw(STRINGS)
    elif where == "metadata":
        meta[draw(st.sampled_from(["name", "namespace", "uid", "creationTimestamp", "annotations", "labels"]))] = (
            draw(STRINGS | ODD_JSON))
    elif where == "priority":
        spec["priority"] = draw(st.integers(-(2**63), 2**63 - 1) | st.sampled_from([BIG_INT, 2**31, -(2**31) - 1])
                                | ODD_JSON)
    elif where == "container":
        container[draw(st.sampled_from(["resources", "name"]))] = draw(ODD_JSON | STRINGS)
    elif where == "spec":
        spec[draw(st.sampled_from(["containers", "initContainers", "overhead", "schedulerName"]))] = draw(ODD_JSON)
    else:
        pod[draw(st.sampled_from(["metadata", "spec"]))] = draw(ODD_JSON)
    return where


@st.composite
def hostile_pods(draw) -> tuple[dict[str, Any], list[str]]:
    """A valid base pod with 1..3 hostile values planted (some of them valid too); (pod, where they went)."""
    pod = draw(base_pods())
    planted = [_plant(draw, pod) for _ in range(draw(st.integers(1, 3)))]
    return pod, planted
