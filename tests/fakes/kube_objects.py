"""Builders for Kubernetes objects as API JSON (dicts), for tests that talk to the fake API server.

Each returns a fresh dict a test may change; keyword arguments cover what our tests vary.
"""

from __future__ import annotations

from typing import Any


def pod(name: str, *, namespace: str = "default", labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, limits: dict[str, str] | None = None,
        requests: dict[str, str] | None = None, node: str | None = None,
        scheduler: str | None = None, replica_set: str | None = None) -> dict[str, Any]:
    """A one-container pod; `replica_set` makes it a ReplicaSet's (a controller ownerReference)."""
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = dict(limits)
    if requests:
        resources["requests"] = dict(requests)
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36", "resources": resources}]}
    if node:
        spec["nodeName"] = node
    if scheduler:
        spec["schedulerName"] = scheduler
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                                "annotations": dict(annotations or {})}
    if replica_set:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                                        "uid": f"uid-{replica_set}", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def running(pod_obj: dict[str, Any], *, ready: bool = True) -> dict[str, Any]:
    """The pod as a kubelet would report it once started (phase Running, Ready condition)."""
    pod_obj = {**pod_obj, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}
    return pod_obj


def node(name: str, *, labels: dict[str, str] | None = None, gpus: int = 0) -> dict[str, Any]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {}, "status": {"capacity": capacity, "allocatable": dict(capacity)}}


def namespace(name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def lease(name: str, *, holder: str = "", namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}


def pdb(name: str, *, match_labels: dict[str, str], min_available: int | str | None = None,
        max_unavailable: int | str | None = None, namespace: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": dict(match_labels)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def podgroup(name: str, *, min_member: int, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"minMember": min_member}}


def binding(pod_name: str, node_name: str, *, uid: str | None = None,
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": pod_name}
    if uid:
        metadata["uid"] = uid
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


def eviction(pod_name: str, *, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod_name, "namespace": namespace}}
