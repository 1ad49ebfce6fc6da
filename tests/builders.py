"""Builders for test fixtures: clusters and pods that read like the scenario they describe.

    node("a").gpus(8, model="A100", nvlink="all").build()
    pod("p").gpus(2).cpu("4").build()         # API JSON, as kube-scheduler sends it
    pod("p").share(500, memory_mib=4096).mps().request()   # parsed PodRequest
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.request import PodRequest, parse_pod

_uids = itertools.count(1)


@dataclass
class NodeBuilder:
    name: str
    cpu_milli: int = 64_000
    memory_mib: int = 256 * 1024
    labels: dict[str, str] = field(default_factory=dict)
    _gpus: list[Gpu] = field(default_factory=list)
    unavailable_reason: str = ""

    def gpus(self, count: int, *, model: str = "NVIDIA-A100-SXM4-80GB", memory_mib: int = 81920,
             sharing: Sharing | str = Sharing.EXCLUSIVE, nvlink: str = "none", healthy: bool = True,
             mig: bool = False) -> NodeBuilder:
        sharing = Sharing.parse(sharing) if isinstance(sharing, str) else sharing
        start = len(self._gpus)
        for i in range(start, start + count):
            if nvlink == "all":
                peers = tuple(j for j in range(start, start + count) if j != i)
            elif nvlink == "pairs":
                peers = (i ^ 1,) if start <= (i ^ 1) < start + count else ()
            else:
                peers = ()
            self._gpus.append(Gpu(i, f"GPU-{self.name}-{i}", model, memory_mib, sharing, mig, healthy, peers))
        return self

    def cpu(self, milli: int) -> NodeBuilder:
        self.cpu_milli = milli
        return self

    def memory(self, mib: int) -> NodeBuilder:
        self.memory_mib = mib
        return self

    def label(self, key: str, value: str) -> NodeBuilder:
        self.labels[key] = value
        return self

    def unavailable(self, reason: str) -> NodeBuilder:
        self.unavailable_reason = reason
        return self

    def build(self) -> Node:
        return Node(self.name, self.cpu_milli, self.memory_mib, tuple(self._gpus), self.labels,
                    self.unavailable_reason)


def node(name: str) -> NodeBuilder:
    return NodeBuilder(name)


@dataclass
class PodBuilder:
    name: str
    namespace: str = "ml"
    uid: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    priority: int | None = None

    def gpus(self, count: int | str) -> PodBuilder:
        self.limits["nvidia.com/gpu"] = str(count)
        return self

    def share(self, milli: int | str, *, memory_mib: int | str | None = None) -> PodBuilder:
        self.limits["gpusched.io/gpu-milli"] = str(milli)
        if memory_mib is not None:
            self.limits["gpusched.io/gpu-memory"] = str(memory_mib)
        return self

    def cpu(self, quantity: str) -> PodBuilder:
        self.limits["cpu"] = quantity
        return self

    def memory(self, quantity: str) -> PodBuilder:
        self.limits["memory"] = quantity
        return self

    def models(self, selector: str) -> PodBuilder:
        self.annotations["gpusched.io/gpu-model"] = selector
        return self

    def mps(self) -> PodBuilder:
        self.annotations["gpusched.io/sharing"] = "mps"
        return self

    def policy(self, name: str) -> PodBuilder:
        self.annotations["gpusched.io/policy"] = name
        return self

    def annotate(self, key: str, value: str) -> PodBuilder:
        self.annotations[key] = value
        return self

    def label(self, key: str, value: str) -> PodBuilder:
        self.labels[key] = value
        return self

    def build(self) -> dict[str, Any]:
        uid = self.uid or f"uid-{self.name}-{next(_uids)}"
        self.uid = uid
        spec: dict[str, Any] = {"schedulerName": "gpu-scheduler", "containers": [
            {"name": "main", "resources": {"limits": dict(self.limits), "requests": dict(self.limits)}}]}
        if self.priority is not None:
            spec["priority"] = self.priority
        return {"metadata": {"name": self.name, "namespace": self.namespace, "uid": uid,
                             "annotations": dict(self.annotations), "labels": dict(self.labels)},
                "spec": spec, "status": {"phase": "Pending"}}

    def request(self) -> PodRequest:
        return parse_pod(self.build())


def pod(name: str, **kwargs: Any) -> PodBuilder:
    return PodBuilder(name, **kwargs)
