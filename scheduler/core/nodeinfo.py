"""A node's GPUs as published (DESIGN §3 "What the node agent publishes"), into `model.Node`.

Sources, best first:
1. the agent's annotation `gpusched.io/gpus` (a JSON list, already decoded by the caller);
2. GPU feature discovery labels (`nvidia.com/gpu.product`, `.memory`, `.count`) with the
   `nvidia.com/gpu` allocatable count, for nodes without the agent. GPUs then get stable
   synthetic UUIDs (`<node>/gpu-<index>`) so allocations can still be recorded.

Pure: the caller decodes JSON and decides staleness (it owns the clock).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.core import contract as c
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.quantity import QuantityError, to_integer, to_mib, to_milli


class NodeInfoError(ValueError):
    """A GPU description that cannot be used; the message names the field."""


def gpu_from_dict(entry: Mapping[str, Any], *, where: str = "gpu") -> Gpu:
    """One entry of the agent's annotation / a cluster file's `gpus:` list."""
    if not isinstance(entry, Mapping):
        raise NodeInfoError(f"{where}: expected an object, got {type(entry).__name__}")
    try:
        index = _int(entry, "index", where)
        uuid = entry.get("uuid")
        model = entry.get("model")
        if not isinstance(uuid, str) or not uuid:
            raise NodeInfoError(f"{where}: 'uuid' must be a non-empty string")
        if not isinstance(model, str) or not model:
            raise NodeInfoError(f"{where}: 'model' must be a non-empty string")
        memory = _int(entry, "memoryMiB", where)
        if memory <= 0:
            raise NodeInfoError(f"{where}: 'memoryMiB' must be positive")
        sharing = Sharing.parse(entry.get("sharing", "exclusive"))
        peers = entry.get("nvlinkPeers") or []
        if not isinstance(peers, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in peers):
            raise NodeInfoError(f"{where}: 'nvlinkPeers' must be a list of GPU indices")
        return Gpu(index=index, uuid=uuid, model=shared_model(model), memory_mib=memory, sharing=sharing,
                   mig_enabled=_bool(entry, "migEnabled", where, False), healthy=_bool(entry, "healthy", where, True),
                   nvlink_peers=shared_peers(tuple(peers)), unhealthy_reason=str(entry.get("unhealthyReason") or ""))
    except ValueError as e:
        if isinstance(e, NodeInfoError):
            raise
        raise NodeInfoError(f"{where}: {e}") from None


@functools.lru_cache(maxsize=4096)
def shared_peers(peers: tuple[int, ...]) -> tuple[int, ...]:
    """One tuple object for equal peer lists: at 50,000 nodes x 8 GPUs a tuple per GPU was 45 MB
    of a cluster's 210 MB of live objects, for a handful of distinct values."""
    return peers


@functools.lru_cache(maxsize=4096)
def shared_model(model: str) -> str:
    """One string object per model name, for the same reason as `shared_peers`."""
    return model


def gpus_from_list(entries: Sequence[Any], *, where: str) -> tuple[Gpu, ...]:
    if not isinstance(entries, list):
        raise NodeInfoError(f"{where}: expected a list of GPUs")
    gpus = tuple(gpu_from_dict(e, where=f"{where}[{i}]") for i, e in enumerate(entries))
    indices = [g.index for g in gpus]
    if sorted(indices) != list(range(len(gpus))):
        raise NodeInfoError(f"{where}: GPU indices must be 0..{len(gpus) - 1}, got {indices}")
    uuids = [g.uuid for g in gpus]
    if len(set(uuids)) != len(uuids):
        raise NodeInfoError(f"{where}: duplicate GPU UUIDs")
    return tuple(sorted(gpus, key=lambda g: g.index))


def gpus_from_labels(name: str, labels: Mapping[str, str], allocatable: Mapping[str, Any]) -> tuple[Gpu, ...]:
    """The GFD fallback: N identical GPUs of the labelled product, all exclusive unless the
    device plugin's sharing strategy says time-slicing or MPS."""
    try:
        count = to_integer(allocatable.get(c.GPU_RESOURCE, labels.get(c.GFD_COUNT_LABEL, 0)))
    except QuantityError:
        count = 0
    if count <= 0:
        return ()
    model = labels.get(c.GFD_PRODUCT_LABEL) or "unknown"
    try:
        memory = int(labels.get(c.GFD_MEMORY_LABEL, "0"))
    except ValueError:
        memory = 0
    strategy = labels.get(c.SHARING_STRATEGY_LABEL, "none").lower()
    sharing = {"mps": Sharing.MPS, "time-slicing": Sharing.TIME_SLICING}.get(strategy, Sharing.EXCLUSIVE)
    return tuple(Gpu(index=i, uuid=f"{name}/gpu-{i}", model=model, memory_mib=memory or 1, sharing=sharing)
                 for i in range(count))


def node_from_api(obj: Mapping[str, Any], *, gpu_annotation: list | None = None, unavailable_reason: str = "") -> Node:
    """A Node API object (dict) into the core model. `gpu_annotation` is the decoded agent annotation, if any."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    name = meta.get("name") or ""
    labels = meta.get("labels") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    try:
        cpu = to_milli(allocatable.get("cpu", 0))
        memory = to_mib(allocatable.get("memory", 0))
    except QuantityError as e:
        raise NodeInfoError(f"node {name}: {e}") from None
    if gpu_annotation is not None:
        gpus = gpus_from_list(gpu_annotation, where=f"node {name} annotation {c.NODE_GPUS_ANNOTATION}")
    else:
        gpus = gpus_from_labels(name, labels, allocatable)
    return Node(name=name, cpu_milli=cpu, memory_mib=memory, gpus=gpus, labels=labels,
                unavailable_reason=unavailable_reason)


def gpu_to_dict(gpu: Gpu) -> dict[str, Any]:
    """The inverse of `gpu_from_dict`: the agent's annotation entry."""
    out: dict[str, Any] = {"index": gpu.index, "uuid": gpu.uuid, "model": gpu.model, "memoryMiB": gpu.memory_mib,
                           "sharing": gpu.sharing.label, "migEnabled": gpu.mig_enabled, "healthy": gpu.healthy,
                           "nvlinkPeers": list(gpu.nvlink_peers)}
    if gpu.unhealthy_reason:
        out["unhealthyReason"] = gpu.unhealthy_reason
    return out


def _int(entry: Mapping[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NodeInfoError(f"{where}: {key!r} must be an integer, got {value!r}")
    return value


def _bool(entry: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise NodeInfoError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value
