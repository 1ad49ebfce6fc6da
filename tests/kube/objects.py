"""Builders of Kubernetes API objects (plain JSON dicts) for the adapter's tests."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_uids = itertools.count(1)
SCHEDULER = "gpu-scheduler"


def gpu_list(node: str, count: int, *, model: str = "NVIDIA-A100-SXM4-80GB", memory: int = 81920,
             sharing: str = "exclusive") -> list[dict[str, Any]]:
    return [{"index": i, "uuid": f"GPU-{node}-{i}", "model": model, "memoryMiB": memory, "sharing": sharing,
             "migEnabled": False, "healthy": True, "nvlinkPeers": []} for i in range(count)]


def node(name: str, *, gpus: int = 0, model: str = "NVIDIA-A100-SXM4-80GB", memory: int = 81920,
         sharing: str = "exclusive", cpu: str = "64", mem: str = "512Gi", heartbeat: str | None = None,
         agent: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    allocatable = {"cpu": cpu, "memory": mem, "pods": "110"}
    node_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if gpus and agent:
        annotations["gpusched.io/gpus"] = orjson.dumps(gpu_list(name, gpus, model=model, memory=memory,
                                                                sharing=sharing)).decode()
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
        if not agent:
            node_labels.update({"nvidia.com/gpu.product": model, "nvidia.com/gpu.memory": str(memory)})
    if heartbeat:
        annotations["gpusched.io/agent-heartbeat"] = heartbeat
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable)}}


def pod(name: str, *, namespace: str = "ml", gpus: int = 0, milli: int = 0, gpu_memory: int = 0,
        cpu: str = "1", mem: str = "1Gi", node_name: str = "", scheduler: str = SCHEDULER, phase: str = "",
        annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
        uid: str | None = None, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": cpu, "memory": mem}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    if milli:
        limits["gpusched.io/gpu-milli"] = str(milli)
    if gpu_memory:
        limits["gpusched.io/gpu-memory"] = str(gpu_memory)
    spec: dict[str, Any] = {"schedulerName": scheduler,
                            "containers": [{"name": "main", "image": "busybox",
                                            "resources": {"limits": limits, "requests": dict(limits)}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}-{next(_uids)}",
                         "creationTimestamp": created, "labels": labels or {}, "annotations": annotations or {}},
            "spec": spec, "status": {"phase": phase or ("Running" if node_name else "Pending")}}


def bound(obj: dict[str, Any], node_name: str, gpus: str = "", **annotations: str) -> dict[str, Any]:
    """A copy of `obj` bound to `node_name`, recorded with `gpus` (UUIDs) and extra gpusched.io/
    annotations (`mps_thread_pct="30"` is `gpusched.io/mps-thread-pct`). A record of a pod of our
    scheduler also names the node, as the binder writes it (`node=""` leaves that out)."""
    out = orjson.loads(orjson.dumps(obj))
    out["spec"]["nodeName"] = node_name
    out["status"]["phase"] = "Running"
    if gpus:
        annotations["gpus"] = gpus
        if out["spec"].get("schedulerName") == SCHEDULER:
            annotations.setdefault("node", node_name)
    annotations = {k: v for k, v in annotations.items() if v}
    out["metadata"]["annotations"].update({"gpusched.io/" + k.replace("_", "-"): v for k, v in annotations.items()})
    return out


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
