"""A `PodRequest` as the API JSON kube-scheduler sends the extender (the inverse of `parse_pod`).

Over HTTP the simulator must send real pods; `parse_pod(api_pod(r))` gives back `r` for every
request the simulator builds (tested), so both modes schedule the same thing.
"""

from __future__ import annotations

from typing import Any

from scheduler.core import contract as c
from scheduler.core.request import PodRequest, SharingNeed

SCHEDULER_NAME = "gpusched"


def api_pod(pod: PodRequest) -> dict[str, Any]:
    requests: dict[str, str] = {}
    if pod.cpu_milli:
        requests["cpu"] = f"{pod.cpu_milli}m"
    if pod.memory_mib:
        requests["memory"] = f"{pod.memory_mib}Mi"
    if pod.gpus:
        requests[c.GPU_RESOURCE] = str(pod.gpus)
    if pod.gpu_milli:
        requests[c.MILLI_RESOURCE] = str(pod.gpu_milli)
    if pod.gpu_memory_mib:
        requests[c.GPU_MEMORY_RESOURCE] = str(pod.gpu_memory_mib)
    annotations: dict[str, str] = {}
    labels = dict(pod.labels)
    if not pod.models.is_any:
        annotations[c.MODEL_ANNOTATION] = str(pod.models)
    if pod.sharing is not SharingNeed.ANY:
        annotations[c.SHARING_ANNOTATION] = pod.sharing.value
    if pod.policy:
        annotations[c.POLICY_ANNOTATION] = pod.policy
    if pod.gang is not None:
        if pod.gang.from_pod_group:
            labels[c.POD_GROUP_LABEL] = pod.gang.name
        else:
            labels[c.GANG_LABEL] = pod.gang.name
            annotations[c.GANG_SIZE_ANNOTATION] = str(pod.gang.size)
        if pod.gang.timeout_s is not None:
            annotations[c.GANG_TIMEOUT_ANNOTATION] = str(pod.gang.timeout_s)
    if pod.team_label:
        labels[c.TEAM_LABEL] = pod.team_label
    spec: dict[str, Any] = {"schedulerName": SCHEDULER_NAME, "containers": [
        {"name": "main", "resources": {"requests": requests, "limits": dict(requests)}}]}
    if pod.priority:
        spec["priority"] = pod.priority
    meta: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                            "labels": labels, "annotations": annotations}
    if pod.created:
        meta["creationTimestamp"] = pod.created
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending"}}
