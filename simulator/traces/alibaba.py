"""Alibaba GPU trace v2023 ("openb") pod lists: `openb_pod_list_*.csv` (fgd-protocol.md §1.3).

Columns read: name, cpu_milli, memory_mib, num_gpu, gpu_milli, and where present gpu_spec and the
creation / deletion / scheduled times (the four multigpu files have only the first five). A row
means what the FGD artifact's converter makes of it: `num_gpu == 0` is a CPU-only pod whatever
`gpu_milli` says; otherwise `gpu_milli` is the share of each GPU (1..999 a share of one GPU, 1000
whole GPUs; larger values are clamped to 1000 as the converter does). `gpu_spec` lists the
allowed models separated by `|` ("" = any), kept verbatim in `TracePod.gpu_spec` because the
artifact groups its typical pods by that exact text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector
from simulator.traces.csvrows import TraceError, integer, optional_number, read_rows

REQUIRED = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
MAX_GPUS = 64


@dataclass(frozen=True, slots=True)
class TracePod:
    """One row of a pod list."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    """GPUs asked for (a share counts as 1)."""
    gpu_milli: int
    """Per GPU: 1..999 for a share, 1000 for whole GPUs, 0 for a CPU-only pod."""
    gpu_spec: str = ""
    creation_s: float | None = None
    deletion_s: float | None = None
    scheduled_s: float | None = None

    @property
    def total_milli(self) -> int:
        return self.gpus * self.gpu_milli

    @property
    def is_share(self) -> bool:
        return self.gpus == 1 and 0 < self.gpu_milli < MILLI_PER_GPU

    @property
    def model_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.gpu_spec.split("|") if t)

    def request(self, *, uid: str, name: str | None = None, namespace: str = "openb") -> PodRequest:
        """The scheduling request this row stands for (built directly, not through API JSON)."""
        terms = self.model_terms
        return PodRequest(
            uid=uid, namespace=namespace, name=name or self.name,
            cpu_milli=self.cpu_milli, memory_mib=self.memory_mib,
            gpus=self.gpus if self.gpu_milli == MILLI_PER_GPU else 0,
            gpu_milli=self.gpu_milli if self.is_share else 0,
            models=ModelSelector.any_of(terms) if terms and self.gpus else ModelSelector(),
        )


def load_pods(path: str | Path) -> list[TracePod]:
    """Every row of an openb pod list, in file order."""
    pods: list[TracePod] = []
    names: set[str] = set()
    for line, row in read_rows(path, required=REQUIRED):
        where = f"{path}:{line}"
        name = row["name"].strip()
        if not name:
            raise TraceError(f"{where}: empty pod name")
        if name in names:
            raise TraceError(f"{where}: pod {name} appears twice")
        names.add(name)
        gpus = integer(row, "num_gpu", where, high=MAX_GPUS)
        milli = integer(row, "gpu_milli", where)
        if gpus == 0:
            milli = 0
        elif milli == 0:
            raise TraceError(f"{where}: num_gpu is {gpus} but gpu_milli is 0 (expected 1..1000)")
        milli = min(milli, MILLI_PER_GPU)
        if gpus > 1 and milli < MILLI_PER_GPU:
            raise TraceError(f"{where}: a share (gpu_milli {milli} < 1000) must ask for num_gpu 1, got {gpus}")
        pods.append(TracePod(
            name=name, cpu_milli=integer(row, "cpu_milli", where), memory_mib=integer(row, "memory_mib", where),
            gpus=gpus, gpu_milli=milli, gpu_spec=row.get("gpu_spec", "").strip() if gpus else "",
            creation_s=optional_number(row, "creation_time", where),
            deletion_s=optional_number(row, "deletion_time", where),
            scheduled_s=optional_number(row, "scheduled_time", where),
        ))
    if not pods:
        raise TraceError(f"{path}: no pods")
    return pods
