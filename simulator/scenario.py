"""A time-driven workload: jobs (arrival, duration, pods, team, gang), GPU failures, team quotas.

Made by the seeded generator (`simulator.generator`) or from a trace with timestamps
(`simulator.traces.timeline`), replayed by `simulator.replay`. Pods are what a Job controller
would create: one per member, in the job's team (its namespace and `gpusched.io/team` label),
gang members labelled with the gang name and size as DESIGN §3 says users do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from scheduler.core import contract as c
from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.request import GangSpec, PodRequest, SharingNeed
from scheduler.core.selector import ModelSelector
from scheduler.core.workload import TaskType, Workload


@dataclass(frozen=True)
class JobSpec:
    name: str
    team: str
    submit_s: float
    duration_s: float
    """Run time once all of its pods run (a gang) or once the pod runs."""
    width: int = 1
    """Pods in the job; with `gang`, all-or-nothing."""
    gpus: int = 0
    """Whole GPUs per pod."""
    gpu_milli: int = 0
    """A share of one GPU per pod (1..999)."""
    cpu_milli: int = 1000
    memory_mib: int = 4096
    gang: bool = False
    mps: bool = False
    """The share must land on an MPS GPU (enforced limits)."""
    models: str = ""
    """Allowed GPU models, `gpusched.io/gpu-model` syntax ("" = any)."""
    priority: int = 0

    def __post_init__(self) -> None:
        if self.gpus and self.gpu_milli:
            raise ValueError(f"job {self.name}: whole GPUs and a share at once")
        if not 0 <= self.gpu_milli < MILLI_PER_GPU:
            raise ValueError(f"job {self.name}: gpu_milli must be 0..999")
        if self.width < 1 or self.duration_s < 0 or math.isnan(self.submit_s):
            raise ValueError(f"job {self.name}: width >= 1 and duration >= 0 required")

    @property
    def total_milli(self) -> int:
        return self.width * (self.gpus * MILLI_PER_GPU + self.gpu_milli)

    @property
    def size_class(self) -> str:
        """For reports: a share, 1, 2-4, 5-8 or more than 8 GPUs in all."""
        gpus = self.total_milli / MILLI_PER_GPU
        if gpus == 0:
            return "cpu"
        if gpus < 1:
            return "share"
        return "1" if gpus <= 1 else "2-4" if gpus <= 4 else "5-8" if gpus <= 8 else ">8"

    def pods(self, *, attempt: int = 0) -> list[PodRequest]:
        """The job's pods; a retry after an eviction (`attempt` > 0) gets new names and UIDs."""
        suffix = f"-r{attempt}" if attempt else ""
        gang = GangSpec(name=f"{self.name}{suffix}", size=self.width) if self.gang else None
        models = ModelSelector.parse(self.models) if self.models else ModelSelector()
        labels = {c.TEAM_LABEL: self.team, **({c.GANG_LABEL: gang.name} if gang else {})}
        return [PodRequest(
            uid=f"{self.team}/{self.name}-{i}{suffix}", namespace=self.team, name=f"{self.name}-{i}{suffix}",
            cpu_milli=self.cpu_milli, memory_mib=self.memory_mib, gpus=self.gpus, gpu_milli=self.gpu_milli,
            models=models, sharing=SharingNeed.MPS if self.mps else SharingNeed.ANY, gang=gang,
            team_label=self.team, priority=self.priority, labels=MappingProxyType(labels)) for i in range(self.width)]


@dataclass(frozen=True)
class GpuFailure:
    """GPU `gpu` of `node` turns unhealthy at `at_s` (its pods are evicted), healthy again after `repair_s`."""

    at_s: float
    node: str
    gpu: int
    repair_s: float | None = None


@dataclass(frozen=True)
class TeamQuota:
    """A team's quota in GPUs (milli-GPU precision): always `guaranteed`, borrowing idle GPUs up to `max`."""

    name: str
    guaranteed_gpus: float
    max_gpus: float | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: tuple[JobSpec, ...]
    failures: tuple[GpuFailure, ...] = ()
    teams: tuple[TeamQuota, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What the scenario is, where its numbers come from (shown in the report)."""

    @property
    def team_names(self) -> list[str]:
        return sorted({j.team for j in self.jobs} | {t.name for t in self.teams})

    def typical_workload(self, *, coverage: float = 0.95) -> Workload:
        """The workload M for the fragmentation metric: the jobs' pod shapes (FGD's definition)."""
        firsts = [(job.pods()[0], job.width) for job in self.jobs]
        return Workload.of_shapes(((TaskType.of(pod), pod.memory_mib, width) for pod, width in firsts),
                                  coverage=coverage)
