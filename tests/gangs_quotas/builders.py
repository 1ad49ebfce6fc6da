"""Builders for gang and team scenarios: clusters, pods as kube-scheduler sends them, teams.

    cluster(nodes(4, gpus=8, zone="a"), nodes(2, gpus=8, zone="b", prefix="b"))
    worker("w0", gpus=8).gang("train", 4).team("vision").build()     # API JSON
    teams(vision=(16, 48), nlp=(32, None, 2.0))                       # QuotaConfig
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.core.contract import ZONE_LABEL
from scheduler.core.model import Gpu, Node
from scheduler.core.quotas import QuotaConfig, QuotaUnit, Team
from scheduler.core.request import PodRequest, parse_pod

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
RACK = "example.com/rack"


def gpu_node(name: str, gpus: int = 8, *, model: str = A100, zone: str = "", rack: str = "", nvlink: bool = True,
             cpu_milli: int = 128_000, memory_mib: int = 1 << 20) -> Node:
    labels = {ZONE_LABEL: zone} if zone else {}
    if rack:
        labels[RACK] = rack
    return Node(name, cpu_milli, memory_mib, tuple(
        Gpu(i, f"GPU-{name}-{i}", model, 81920, nvlink_peers=tuple(j for j in range(gpus) if j != i) if nvlink else ())
        for i in range(gpus)), labels)


def nodes(count: int, *, prefix: str = "n", start: int = 0, **kwargs: Any) -> list[Node]:
    return [gpu_node(f"{prefix}{i}", **kwargs) for i in range(start, start + count)]


@dataclass
class PodBuilder:
    name: str
    namespace: str = "ml"
    limits: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    uid: str = ""

    def gang(self, name: str, size: int | None = None, *, timeout_s: int | None = None) -> PodBuilder:
        self.labels["gpusched.io/gang"] = name
        if size is not None:
            self.annotations["gpusched.io/gang-size"] = str(size)
        if timeout_s is not None:
            self.annotations["gpusched.io/gang-timeout-seconds"] = str(timeout_s)
        return self

    def pod_group(self, name: str) -> PodBuilder:
        self.labels["scheduling.x-k8s.io/pod-group"] = name
        return self

    def team(self, name: str) -> PodBuilder:
        self.labels["gpusched.io/team"] = name
        return self

    def models(self, selector: str) -> PodBuilder:
        self.annotations["gpusched.io/gpu-model"] = selector
        return self

    def build(self) -> dict[str, Any]:
        return {"metadata": {"name": self.name, "namespace": self.namespace,
                             "uid": self.uid or f"uid-{self.namespace}-{self.name}",
                             "labels": dict(self.labels), "annotations": dict(self.annotations)},
                "spec": {"schedulerName": "gpu-scheduler", "containers": [
                    {"name": "main", "resources": {"limits": dict(self.limits), "requests": dict(self.limits)}}]},
                "status": {"phase": "Pending"}}

    def request(self) -> PodRequest:
        return parse_pod(self.build())


def worker(name: str, *, gpus: int = 0, milli: int = 0, cpu: str = "4", namespace: str = "ml") -> PodBuilder:
    limits = {"cpu": cpu, "memory": "16Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    if milli:
        limits["gpusched.io/gpu-milli"] = str(milli)
    return PodBuilder(name, namespace, limits)


def gang_of(name: str, size: int, *, gpus: int = 8, namespace: str = "ml", team: str | None = None,
            timeout_s: int | None = None) -> list[dict[str, Any]]:
    """`size` identical members named NAME-0 .. NAME-(size-1)."""
    out = []
    for i in range(size):
        b = worker(f"{name}-{i}", gpus=gpus, namespace=namespace).gang(name, size, timeout_s=timeout_s)
        if team:
            b.team(team)
        out.append(b.build())
    return out


def teams(*, unit: QuotaUnit = QuotaUnit.GPU, **spec: tuple) -> QuotaConfig:
    """teams(vision=(16, 48)) -> guaranteed 16 GPUs, max 48; a third item is the weight."""
    out = []
    for name, (guaranteed, limit, *weight) in spec.items():
        out.append(Team(name, int(guaranteed * 1000), None if limit is None else int(limit * 1000),
                        weight[0] if weight else 1.0))
    return QuotaConfig(tuple(out), unit)
