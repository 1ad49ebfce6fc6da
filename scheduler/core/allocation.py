"""An allocation: which GPUs (and how much of each) a bound pod holds. The unit of the books.

`annotations()` is the persistent record written on the pod at bind (DESIGN §3 "What the extender
records"); `from_annotations` reads it back, so a restarted extender rebuilds exactly what it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from scheduler.core import contract as c
from scheduler.core.state import Grant


@dataclass(frozen=True)
class Allocation:
    uid: str
    namespace: str
    name: str
    node: str
    gpu_uuids: tuple[str, ...] = ()
    slots: tuple[int, ...] = ()
    milli: int = 0
    """Per GPU: 1000 for whole GPUs, the share otherwise, 0 for no GPU."""
    gpu_memory_mib: tuple[int, ...] = ()
    """Per GPU: the whole GPU's memory for whole GPUs, the granted MiB for a share."""
    cpu_milli: int = 0
    memory_mib: int = 0
    mps: bool = False
    """A share placed on an MPS GPU: the container gets enforced limits."""
    share: bool = False
    borrowed: bool = False
    team: str = ""
    gang: str = ""
    priority: int = 0
    created: str = ""
    sequence: int = 0
    """Bind order, for "newest first" without a clock."""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def grant(self) -> Grant:
        return Grant(self.slots, self.milli, self.gpu_memory_mib, self.cpu_milli, self.memory_mib)

    @property
    def gpu_milli_total(self) -> int:
        return self.milli * len(self.slots)

    def annotations(self) -> dict[str, str]:
        """What the binder writes on the pod before it creates the Binding."""
        out = {c.ASSIGNED_GPUS_ANNOTATION: ",".join(self.gpu_uuids), c.ASSIGNED_NODE_ANNOTATION: self.node}
        if self.share:
            out[c.GRANTED_MILLI_ANNOTATION] = str(self.milli)
            out[c.GRANTED_MEMORY_ANNOTATION] = str(self.gpu_memory_mib[0] if self.gpu_memory_mib else 0)
            if self.mps:
                out[c.MPS_THREAD_PCT_ANNOTATION] = str(max(1, -(-self.milli // 10)))
                if self.gpu_memory_mib and self.gpu_memory_mib[0]:
                    # The container sees only its GPU, as device 0.
                    out[c.MPS_MEM_LIMIT_ANNOTATION] = f"0={self.gpu_memory_mib[0]}M"
        if self.borrowed:
            out[c.BORROWED_ANNOTATION] = "true"
        out.update(self.extra)
        return out

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["gpu_uuids"] = list(self.gpu_uuids)
        record["slots"] = list(self.slots)
        record["gpu_memory_mib"] = list(self.gpu_memory_mib)
        record["extra"] = dict(self.extra)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Allocation:
        fields = dict(record)
        for name in ("gpu_uuids", "slots", "gpu_memory_mib"):
            fields[name] = tuple(fields.get(name) or ())
        fields["extra"] = dict(fields.get("extra") or {})
        return cls(**fields)


def parse_assigned(annotations: Mapping[str, str]) -> tuple[tuple[str, ...], int | None, int | None]:
    """(GPU UUIDs, granted milli, granted MiB) from a bound pod's annotations; empty when unrecorded."""
    uuids = tuple(u.strip() for u in annotations.get(c.ASSIGNED_GPUS_ANNOTATION, "").split(",") if u.strip())
    milli = annotations.get(c.GRANTED_MILLI_ANNOTATION)
    memory = annotations.get(c.GRANTED_MEMORY_ANNOTATION)
    return (uuids, int(milli) if milli and milli.isdigit() else None,
            int(memory) if memory and memory.isdigit() else None)
