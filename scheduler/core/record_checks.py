"""What a well-formed record is: allocation records (`Allocation.to_record`), pod records
(`pod_record`) and gang/quota records (`gate_records`), checked before anything is built from them.

Records come back from files a person can edit (the `--state-file` journal), so every field is
checked for its type and range, unknown fields and kinds are refused, and the first problem is
raised as `RecordError` naming the field by its path (`allocation.gpu_memory_mib[2]`). A record
that passes can be turned into objects and put in the books without an exception: the ranges
are those of anything gpusched itself writes (a GPU has 1000 milli, a pod at most
`MAX_WHOLE_GPUS` GPUs, quantities fit int64), not those of one cluster; whether the node and
its GPUs still exist is the restore's business, which keeps the record and reports it.
Must not know files, lines or JSON parsing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.gangs import Outcome
from scheduler.core.request import MAX_GPU_MEMORY_MIB, MAX_WHOLE_GPUS, SharingNeed
from scheduler.core.selector import ModelSelector, SelectorError

MAX_QUANTITY = 1 << 50
"""CPU milli and memory MiB: far beyond any node, far below int64 (the books' arrays)."""
MAX_COUNT = 1 << 31
"""Ids, sizes, sequence numbers, priorities: what a Kubernetes int32 or a long run reaches."""
MAX_SECONDS = 1e12
"""Times and deadlines (seconds since the epoch, or of a fake clock): about 31,000 years."""

Check = Callable[[Any, str], None]


class RecordError(ValueError):
    """A record that is not one gpusched writes; the message starts with the field's path."""


def check_allocation(value: object, where: str = "allocation") -> None:
    _object(value, where, _ALLOCATION_REQUIRED, _ALLOCATION_OPTIONAL)
    slots, memory = value.get("slots", []), value.get("gpu_memory_mib", [])
    if len(slots) != len(memory):
        raise RecordError(f"{where}.gpu_memory_mib: {len(memory)} values for {len(slots)} slots")
    if len(value.get("gpu_uuids", [])) < len(slots):
        raise RecordError(f"{where}.gpu_uuids: fewer GPUs than slots")
    milli = value.get("milli", 0)
    if value.get("share", False):
        if not 1 <= milli < MILLI_PER_GPU or len(slots) > 1:
            raise RecordError(f"{where}.milli: a share holds 1..999 milli of at most one GPU, got {milli}")
    elif milli != MILLI_PER_GPU and (slots or milli != 0):
        raise RecordError(f"{where}.milli: whole GPUs hold {MILLI_PER_GPU} milli each, got {milli}")


def check_pod(value: object, where: str = "pod") -> None:
    _object(value, where, _POD_REQUIRED, _POD_OPTIONAL)
    if value.get("gpus", 0) and value.get("gpuMilli", 0):
        raise RecordError(f"{where}.gpuMilli: a pod asks for whole GPUs or a share, not both")


def check_gate(value: object, where: str = "record") -> None:
    """A gang or quota record of any kind (`gate_records`)."""
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: must be an object, got {_shown(value)}")
    kind = value.get("kind")
    fields = _GATE_KINDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise RecordError(f"{where}.kind: unknown record kind {_shown(kind)} "
                          f"(known: {', '.join(sorted(_GATE_KINDS))})")
    required, optional = fields
    _object(value, where, {"kind": _string(), **required}, optional)


# ----------------------------------------------------------------------------- field checks
def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: object, where: str, required: Mapping[str, Check], optional: Mapping[str, Check]) -> None:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: must be an object, got {_shown(value)}")
    for name in value:
        if name not in required and name not in optional:
            raise RecordError(f"{where}.{name}: unknown field")
    for name, check in required.items():
        if name not in value:
            raise RecordError(f"{where}.{name}: missing")
        check(value[name], f"{where}.{name}")
    for name, check in optional.items():
        if name in value:
            check(value[name], f"{where}.{name}")


def _integer(low: int, high: int) -> Check:
    def check(value: object, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecordError(f"{where}: must be an integer, got {_shown(value)}")
        if not low <= value <= high:
            raise RecordError(f"{where}: must be between {low} and {high}, got {value}")
    return check


def _seconds(value: object, where: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RecordError(f"{where}: must be a number of seconds, got {_shown(value)}")
    if not math.isfinite(value) or abs(value) > MAX_SECONDS:
        raise RecordError(f"{where}: {value} is not a time")


def _string(*, nonempty: bool = False) -> Check:
    def check(value: object, where: str) -> None:
        if not isinstance(value, str):
            raise RecordError(f"{where}: must be a string, got {_shown(value)}")
        if nonempty and not value:
            raise RecordError(f"{where}: must not be empty")
    return check


def _boolean(value: object, where: str) -> None:
    if not isinstance(value, bool):
        raise RecordError(f"{where}: must be true or false, got {_shown(value)}")


def _optional(check: Check) -> Check:
    def maybe(value: object, where: str) -> None:
        if value is not None:
            check(value, where)
    return maybe


def _list_of(check: Check, *, most: int = MAX_COUNT) -> Check:
    def each(value: object, where: str) -> None:
        if not isinstance(value, list):
            raise RecordError(f"{where}: must be a list, got {_shown(value)}")
        if len(value) > most:
            raise RecordError(f"{where}: at most {most} items, got {len(value)}")
        for i, item in enumerate(value):
            check(item, f"{where}[{i}]")
    return each


def _string_map(value: object, where: str) -> None:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: must be an object, got {_shown(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise RecordError(f"{where}.{key}: must be a string, got {_shown(item)}")


def _one_of(values: tuple[str, ...]) -> Check:
    def check(value: object, where: str) -> None:
        if value not in values:
            raise RecordError(f"{where}: must be one of {', '.join(values)}, got {_shown(value)}")
    return check


def _gang_key(value: object, where: str) -> None:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        raise RecordError(f"{where}: must be [namespace, name], got {_shown(value)}")


def _models(value: object, where: str) -> None:
    _object(value, where, {}, {"allow": _list_of(_string()), "deny": _list_of(_string())})
    terms = [*value.get("allow", ()), *(f"!{t}" for t in value.get("deny", ()))]
    if terms:
        try:
            ModelSelector.parse(",".join(terms))
        except SelectorError as e:
            raise RecordError(f"{where}: {e}") from None


_NAME = _string(nonempty=True)
_QUANTITY = _integer(0, MAX_QUANTITY)
_COUNT = _integer(0, MAX_COUNT)
_PRIORITY = _integer(-MAX_COUNT, MAX_COUNT)

_ALLOCATION_REQUIRED: dict[str, Check] = {"uid": _NAME, "namespace": _NAME, "name": _NAME, "node": _NAME}
_ALLOCATION_OPTIONAL: dict[str, Check] = {
    "gpu_uuids": _list_of(_NAME, most=MAX_WHOLE_GPUS), "slots": _list_of(_integer(0, MAX_WHOLE_GPUS - 1),
                                                                          most=MAX_WHOLE_GPUS),
    "milli": _integer(0, MILLI_PER_GPU), "gpu_memory_mib": _list_of(_integer(0, MAX_GPU_MEMORY_MIB),
                                                                    most=MAX_WHOLE_GPUS),
    "cpu_milli": _QUANTITY, "memory_mib": _QUANTITY, "mps": _boolean, "share": _boolean, "borrowed": _boolean,
    "team": _string(), "gang": _string(), "priority": _PRIORITY, "created": _string(), "sequence": _COUNT,
    "extra": _string_map,
}

_GANG_SPEC = {"name": _NAME}, {"size": _optional(_integer(1, MAX_COUNT)),
                               "timeoutSeconds": _optional(_integer(1, MAX_COUNT)), "fromPodGroup": _boolean}
_POD_REQUIRED: dict[str, Check] = {"uid": _NAME, "namespace": _NAME, "name": _NAME}
_POD_OPTIONAL: dict[str, Check] = {
    "cpuMilli": _QUANTITY, "memoryMiB": _QUANTITY, "gpus": _integer(0, MAX_WHOLE_GPUS),
    "gpuMilli": _integer(0, MILLI_PER_GPU - 1), "gpuMemoryMiB": _integer(0, MAX_GPU_MEMORY_MIB), "models": _models,
    "sharing": _one_of(tuple(s.value for s in SharingNeed)), "policy": _optional(_string()),
    "team": _optional(_string()), "priority": _PRIORITY, "created": _string(), "labels": _string_map,
    "gang": _optional(lambda value, where: _object(value, where, *_GANG_SPEC)),
}

_GATE_KINDS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "pod": ({"pod": check_pod}, {"reclaim": _boolean}),
    "forget": ({"uid": _NAME}, {}),
    "size": ({"gang": _gang_key, "size": _integer(1, MAX_COUNT)}, {}),
    "problem": ({"gang": _gang_key, "reason": _string()}, {}),
    "reserve": ({"gang": _gang_key, "id": _COUNT, "size": _integer(1, MAX_COUNT), "at": _seconds,
                 "deadline": _seconds, "nodes": _list_of(_string()), "zones": _list_of(_string()),
                 "racks": _list_of(_string()), "members": _list_of(check_allocation)}, {}),
    "rekey": ({"gang": _gang_key, "old": _NAME, "new": _NAME}, {}),
    "close": ({"gang": _gang_key, "id": _COUNT, "outcome": _one_of(tuple(o.value for o in Outcome)),
               "reason": _string(), "at": _seconds, "bound": _COUNT}, {}),
    "broken": ({"gang": _gang_key, "reason": _string()}, {}),
}
