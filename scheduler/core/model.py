"""What the cluster is made of: GPUs and nodes, as the agent or a cluster file describes them.

These are immutable values. `state.ClusterState` turns a list of them into arrays; nothing
here knows about allocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType


class Sharing(IntEnum):
    """How a GPU may be shared. Values are stored in the GPU table."""

    EXCLUSIVE = 0
    """One pod at a time: given only whole."""
    MPS = 1
    """NVIDIA MPS: shares get an enforced compute percentage and pinned-memory limit."""
    TIME_SLICING = 2
    """Shares take turns on the whole GPU; compute share is bookkeeping, not enforced."""

    @classmethod
    def parse(cls, text: str) -> Sharing:
        try:
            return _SHARING_NAMES[text.strip().lower()]
        except (KeyError, AttributeError):
            raise ValueError(f"unknown sharing mode {text!r} (expected exclusive, mps or time-slicing)") from None

    @property
    def label(self) -> str:
        return _SHARING_LABELS[self]


_SHARING_NAMES = {"exclusive": Sharing.EXCLUSIVE, "mps": Sharing.MPS, "time-slicing": Sharing.TIME_SLICING,
                  "timeslicing": Sharing.TIME_SLICING, "time_slicing": Sharing.TIME_SLICING}
_SHARING_LABELS = {Sharing.EXCLUSIVE: "exclusive", Sharing.MPS: "mps", Sharing.TIME_SLICING: "time-slicing"}

MAX_GPUS_PER_NODE = 64
"""NVLink peers are kept as a 64-bit mask of slot indices."""


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU, in the shape of the agent's node annotation (DESIGN §3)."""

    index: int
    uuid: str
    model: str
    memory_mib: int
    sharing: Sharing = Sharing.EXCLUSIVE
    mig_enabled: bool = False
    healthy: bool = True
    nvlink_peers: tuple[int, ...] = ()
    unhealthy_reason: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A node as the scheduler sees it: capacity, labels and GPUs in index order."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: tuple[Gpu, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    unavailable_reason: str = ""
    """Non-empty when the node takes no new pods at all (e.g. its agent fell silent)."""

    def __post_init__(self) -> None:
        if len(self.gpus) > MAX_GPUS_PER_NODE:
            raise ValueError(f"node {self.name}: {len(self.gpus)} GPUs, at most {MAX_GPUS_PER_NODE} supported")
        if not isinstance(self.labels, MappingProxyType):
            object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
