"""What a pod asks for, parsed once from its API JSON (DESIGN §3, "Pod requests").

`parse_pod` is the only place that reads a pod's resources and gpusched annotations. Every
invalid request raises `InvalidRequest` with one line a user can act on; the message goes
into the pod's `FailedScheduling` event verbatim.

Whoever can create a pod (or reach the extender) writes this input, so every value is checked
against a bound before anything uses it, and nothing that passes can overflow the books: every
quantity is at most 2^63-1 (`quantity`), none is negative, totals stay within int64, gang
numbers and priorities have ranges, and user text is quoted short in reasons (`quoting`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from scheduler.core import contract as c
from scheduler.core.quantity import INT64_MAX, QuantityError, parse_quantity, to_integer, to_mib, to_milli
from scheduler.core.quoting import quoted
from scheduler.core.selector import ModelSelector, SelectorError

MAX_GPU_MEMORY_MIB = 1 << 20
"""1 TiB: larger than any GPU; a bigger ask is a typo, not a request."""
MAX_WHOLE_GPUS = 1024
DEFAULT_GANG_TIMEOUT_S = 300
MAX_GANG_TIMEOUT_S = 86_400
"""A day: a reservation holds whole nodes' GPUs idle until its members bind (normally seconds)."""
MAX_GANG_SIZE = 10_000
"""Members of one gang: more pods than the largest training jobs run, and planning grows with it."""
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
"""`spec.priority` is an int32 in the API."""
MAX_NAME_LENGTH = 253
"""metadata.name, namespace, uid: the API's longest name (a DNS subdomain); they are repeated in reasons."""
MAX_TOTAL = INT64_MAX
"""Any resource's total over a pod's containers, in the unit the books keep (millicores, MiB, ...)."""
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", re.ASCII)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", re.ASCII)
_POLICY_NAME = re.compile(r"[a-z0-9][-a-z0-9]{0,62}", re.ASCII)
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_./]{0,62}", re.ASCII)
_DIGITS = re.compile(r"\+?([0-9]+)", re.ASCII)


class InvalidRequest(ValueError):
    """A pod whose GPU request can never be understood; the message is the reason."""


class SharingNeed(Enum):
    """Which sharing modes a share may land on."""

    ANY = "any"
    """MPS or time-sliced GPUs (never exclusive ones)."""
    MPS = "mps"
    TIME_SLICING = "time-slicing"


@dataclass(frozen=True)
class GangSpec:
    """Membership in an all-or-nothing group. `size` is None until a PodGroup supplies it."""

    name: str
    size: int | None
    timeout_s: int | None = None
    """Seconds a reservation may wait for its binds; None: the scheduler's default (DEFAULT_GANG_TIMEOUT_S)."""
    from_pod_group: bool = False


@dataclass(frozen=True)
class PodRequest:
    """One pod's scheduling request. Exactly one of `gpus` and `gpu_milli` is non-zero for a GPU pod."""

    uid: str
    namespace: str
    name: str
    cpu_milli: int = 0
    memory_mib: int = 0
    gpus: int = 0
    """Whole GPUs, each fully free, on one node."""
    gpu_milli: int = 0
    """A share of one GPU, 1..999."""
    gpu_memory_mib: int = 0
    """With a share: GPU memory granted. With whole GPUs: the least memory each GPU must have."""
    models: ModelSelector = field(default_factory=ModelSelector)
    sharing: SharingNeed = SharingNeed.ANY
    policy: str | None = None
    gang: GangSpec | None = None
    team_label: str | None = None
    priority: int = 0
    created: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Of the pod's labels, only those gpusched reads (`contract.POD_LABELS`): a pending pod is
    remembered until it binds, and whole label sets of 100,000 pods are memory for nothing."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def wants_gpu(self) -> bool:
        return self.gpus > 0 or self.gpu_milli > 0

    @property
    def is_share(self) -> bool:
        return self.gpu_milli > 0

    @property
    def total_milli(self) -> int:
        """GPU compute asked for, in thousandths of a GPU."""
        return self.gpus * c.MILLI_PER_GPU + self.gpu_milli

    @property
    def shape(self) -> tuple:
        """Everything placement depends on, and nothing else (pods with equal shapes place alike)."""
        return (self.cpu_milli, self.memory_mib, self.gpus, self.gpu_milli, self.gpu_memory_mib,
                self.models, self.sharing)


def parse_pod(pod: Mapping[str, Any]) -> PodRequest:
    """The request of a pod given as API JSON (camelCase, quantities as strings)."""
    if not isinstance(pod, Mapping):
        raise InvalidRequest("pod is not an object")
    meta = _mapping(pod.get("metadata"), "metadata")
    spec = _mapping(pod.get("spec"), "spec")
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    labels = _string_map(meta.get("labels"), "metadata.labels")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("pod has no metadata.name")
    namespace = meta.get("namespace") or "default"
    uid = meta.get("uid") or ""
    created = meta.get("creationTimestamp") or ""
    if not isinstance(namespace, str) or not isinstance(uid, str):
        raise InvalidRequest("metadata.namespace and metadata.uid must be strings")
    for what, text in (("name", name), ("namespace", namespace), ("uid", uid), ("creationTimestamp", created)):
        if isinstance(text, str) and len(text) > MAX_NAME_LENGTH:
            raise InvalidRequest(f"metadata.{what} {quoted(text)} is longer than {MAX_NAME_LENGTH} characters")

    totals = _effective_requests(spec)
    for resource, total in totals.items():
        if total > MAX_TOTAL:
            raise InvalidRequest(f"{resource}: {total} ({_UNITS.get(resource, 'units')}) in total is more than "
                                 "any node has (at most 2^63-1)")
    gpus = totals.get(c.GPU_RESOURCE, 0)
    milli = totals.get(c.MILLI_RESOURCE, 0)
    gpu_memory = totals.get(c.GPU_MEMORY_RESOURCE, 0)
    if gpus < 0 or milli < 0:
        raise InvalidRequest("GPU requests cannot be negative")
    if gpus > MAX_WHOLE_GPUS:
        raise InvalidRequest(f"{c.GPU_RESOURCE}: {gpus} is more GPUs than any pod can use (at most {MAX_WHOLE_GPUS})")
    if gpus and milli:
        raise InvalidRequest(
            f"asks for whole GPUs ({c.GPU_RESOURCE}: {gpus}) and a share ({c.MILLI_RESOURCE}: {milli}) at once; "
            "ask for one or the other")
    if c.MILLI_RESOURCE in totals and not 1 <= milli <= 999:
        hint = f" (for a whole GPU use {c.GPU_RESOURCE}: 1)" if milli == 1000 else ""
        raise InvalidRequest(f"{c.MILLI_RESOURCE} must be between 1 and 999, got {milli}{hint}")
    if gpu_memory < 0:
        raise InvalidRequest(f"{c.GPU_MEMORY_RESOURCE} cannot be negative, got {gpu_memory}")
    if gpu_memory > MAX_GPU_MEMORY_MIB:
        raise InvalidRequest(f"{c.GPU_MEMORY_RESOURCE}: {gpu_memory} MiB is more memory than any GPU has")
    if gpu_memory and not (milli or gpus):
        raise InvalidRequest(f"{c.GPU_MEMORY_RESOURCE} needs {c.MILLI_RESOURCE} (a share) or {c.GPU_RESOURCE}")

    models = ModelSelector()
    if c.MODEL_ANNOTATION in annotations:
        try:
            models = ModelSelector.parse(annotations[c.MODEL_ANNOTATION])
        except SelectorError as e:
            raise InvalidRequest(f"{c.MODEL_ANNOTATION}: {e}") from None

    sharing = SharingNeed.ANY
    if c.SHARING_ANNOTATION in annotations:
        text = annotations[c.SHARING_ANNOTATION].strip().lower()
        try:
            sharing = SharingNeed(text)
        except ValueError:
            raise InvalidRequest(f"{c.SHARING_ANNOTATION}: unknown sharing mode {quoted(text)} "
                                 "(expected mps, time-slicing or any)") from None
        if sharing is not SharingNeed.ANY and not milli:
            raise InvalidRequest(f"{c.SHARING_ANNOTATION}: {text} applies to a share ({c.MILLI_RESOURCE}), "
                                 "not to whole GPUs")

    policy = annotations.get(c.POLICY_ANNOTATION, "").strip() or None
    if policy is not None and not _POLICY_NAME.fullmatch(policy):
        raise InvalidRequest(f"{c.POLICY_ANNOTATION}: {quoted(policy)} is not a policy name")
    priority = spec.get("priority") or 0
    if not isinstance(priority, int) or isinstance(priority, bool) or not (
            PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]):
        raise InvalidRequest(f"spec.priority must be an integer (int32), got {quoted(priority)}")
    team = labels.get(c.TEAM_LABEL) or None
    if team is not None and not _LABEL_VALUE.fullmatch(team):
        raise InvalidRequest(f"label {c.TEAM_LABEL}: {quoted(team)} is not a valid label value")
    return PodRequest(
        uid=uid, namespace=namespace, name=name,
        cpu_milli=totals.get("cpu", 0), memory_mib=totals.get("memory", 0),
        gpus=gpus, gpu_milli=milli, gpu_memory_mib=gpu_memory,
        models=models, sharing=sharing, policy=policy,
        gang=_gang(labels, annotations, namespace), team_label=team,
        priority=priority, created=created if isinstance(created, str) else "",
        labels=MappingProxyType({k: labels[k] for k in c.POD_LABELS if k in labels}),
    )


def _gang(labels: Mapping[str, str], annotations: Mapping[str, str], namespace: str) -> GangSpec | None:
    timeout = None
    if c.GANG_TIMEOUT_ANNOTATION in annotations:
        timeout = _bounded_int(annotations[c.GANG_TIMEOUT_ANNOTATION], c.GANG_TIMEOUT_ANNOTATION,
                               MAX_GANG_TIMEOUT_S)
    if c.GANG_LABEL in labels:
        name = labels[c.GANG_LABEL]
        if not _NAME.fullmatch(name):
            raise InvalidRequest(f"label {c.GANG_LABEL}: {quoted(name)} is not a valid name")
        if c.GANG_SIZE_ANNOTATION not in annotations:
            raise InvalidRequest(f"gang {namespace}/{name}: annotation {c.GANG_SIZE_ANNOTATION} is missing")
        size = _bounded_int(annotations[c.GANG_SIZE_ANNOTATION], c.GANG_SIZE_ANNOTATION, MAX_GANG_SIZE)
        return GangSpec(name=name, size=size, timeout_s=timeout)
    if c.POD_GROUP_LABEL in labels:
        name = labels[c.POD_GROUP_LABEL]
        if not _NAME.fullmatch(name):
            raise InvalidRequest(f"label {c.POD_GROUP_LABEL}: {quoted(name)} is not a valid name")
        return GangSpec(name=name, size=None, timeout_s=timeout, from_pod_group=True)
    return None


def _bounded_int(text: str, what: str, high: int) -> int:
    """1..high from ASCII digits; the length is checked before int() (which takes any Unicode digit,
    and refuses more than 4,300 digits with a ValueError)."""
    match = _DIGITS.fullmatch(text.strip())
    digits = match.group(1).lstrip("0") if match else ""
    if not digits:
        raise InvalidRequest(f"{what} must be a positive integer, got {quoted(text)}")
    if len(digits) > len(str(high)) or int(digits) > high:
        raise InvalidRequest(f"{what} must be at most {high}, got {quoted(text)}")
    return int(digits)


_CONVERTERS = {"cpu": to_milli, "memory": to_mib, c.GPU_RESOURCE: to_integer, c.MILLI_RESOURCE: to_integer,
               c.GPU_MEMORY_RESOURCE: to_integer}
_UNITS = {"cpu": "millicores", "memory": "MiB", c.GPU_RESOURCE: "GPUs", c.MILLI_RESOURCE: "thousandths of a GPU",
          c.GPU_MEMORY_RESOURCE: "MiB"}


def _effective_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """Per resource: sum over containers, at least the largest init container, plus pod overhead."""
    containers = _containers(spec, "containers")
    init = _containers(spec, "initContainers")
    totals: dict[str, int] = {}
    for container in containers:
        for name, value in _container_requests(container).items():
            totals[name] = totals.get(name, 0) + value
    for container in init:
        for name, value in _container_requests(container).items():
            totals[name] = max(totals.get(name, 0), value)
    overhead = spec.get("overhead")
    if isinstance(overhead, Mapping):
        for name, value in _checked(overhead, "spec.overhead").items():
            totals[name] = totals.get(name, 0) + value
    return totals


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(x, Mapping) for x in value):
        raise InvalidRequest(f"spec.{key} must be a list of containers")
    return value


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise InvalidRequest(f"container {container.get('name')!r}: resources must be an object")
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    if not isinstance(requests, Mapping) or not isinstance(limits, Mapping):
        raise InvalidRequest(f"container {quoted(container.get('name'))}: requests and limits must be objects")
    where = f"container {quoted(container.get('name'))}"
    limited = _checked(limits, where)
    return {**limited, **_checked(requests, where)}  # the API server defaults requests from limits


def _checked(quantities: Mapping[str, Any], where: str) -> dict[str, int]:
    """Every quantity of a requests, limits or overhead map checked (valid, bounded, not negative);
    the ones gpusched counts converted to the books' units."""
    out: dict[str, int] = {}
    for name, value in quantities.items():
        converter = _CONVERTERS.get(name)
        try:
            negative = parse_quantity(value) < 0  # before rounding: -1 byte is 0 MiB
            amount = converter(value) if converter and not negative else 0
        except QuantityError as e:
            if name in (c.GPU_RESOURCE, c.MILLI_RESOURCE, c.GPU_MEMORY_RESOURCE):
                hint = f"; for part of a GPU use {c.MILLI_RESOURCE}" if name == c.GPU_RESOURCE else ""
                raise InvalidRequest(f"{where}: {name} must be a whole number, got {quoted(value)}{hint}") from None
            raise InvalidRequest(f"{where}: {_resource(name)}: {e}") from None
        if negative:
            raise InvalidRequest(f"{where}: {_resource(name)} cannot be negative, got {quoted(value)}")
        if converter:
            out[name] = amount
    return out


def _resource(name: str) -> str:
    """A resource name as written, or quoted when it is not one (so the reason stays one short line)."""
    return name if _RESOURCE_NAME.fullmatch(name) else quoted(name)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"pod {what} must be an object")
    return value


def _string_map(value: object, what: str) -> Mapping[str, str]:
    value = _mapping(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequest(f"pod {what} must map strings to strings")
    return value
