"""A parsed pod request as plain data and back, for records that outlive a process.

Gang members and pods waiting for reclaim are remembered across restarts of a `--cluster`
extender (its state file); this is their shape there. `pod_from_record(pod_to_record(p)) == p`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from scheduler.core.request import GangSpec, PodRequest, SharingNeed
from scheduler.core.selector import ModelSelector


def pod_to_record(pod: PodRequest) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uid": pod.uid, "namespace": pod.namespace, "name": pod.name, "cpuMilli": pod.cpu_milli,
        "memoryMiB": pod.memory_mib, "gpus": pod.gpus, "gpuMilli": pod.gpu_milli, "gpuMemoryMiB": pod.gpu_memory_mib,
        "models": {"allow": list(pod.models.allow), "deny": list(pod.models.deny)}, "sharing": pod.sharing.value,
        "policy": pod.policy, "team": pod.team_label, "priority": pod.priority, "created": pod.created,
        "labels": dict(pod.labels),
    }
    if pod.gang is not None:
        record["gang"] = {"name": pod.gang.name, "size": pod.gang.size, "timeoutSeconds": pod.gang.timeout_s,
                          "fromPodGroup": pod.gang.from_pod_group}
    return record


def pod_from_record(record: Mapping[str, Any]) -> PodRequest:
    gang = record.get("gang")
    models = record.get("models") or {}
    return PodRequest(
        uid=record["uid"], namespace=record["namespace"], name=record["name"],
        cpu_milli=int(record.get("cpuMilli", 0)), memory_mib=int(record.get("memoryMiB", 0)),
        gpus=int(record.get("gpus", 0)), gpu_milli=int(record.get("gpuMilli", 0)),
        gpu_memory_mib=int(record.get("gpuMemoryMiB", 0)),
        models=ModelSelector(tuple(models.get("allow", ())), tuple(models.get("deny", ()))),
        sharing=SharingNeed(record.get("sharing", "any")), policy=record.get("policy"),
        gang=GangSpec(gang["name"], gang.get("size"), gang.get("timeoutSeconds"), bool(gang.get("fromPodGroup")))
        if gang else None,
        team_label=record.get("team"), priority=int(record.get("priority", 0)), created=record.get("created", ""),
        labels=MappingProxyType(dict(record.get("labels") or {})),
    )
