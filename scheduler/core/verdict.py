"""Why a node does not take a pod, and what kube-scheduler should make of it.

A rejection is not an error. Each reason is either *unresolvable* (the pod can never run on that
node as it is: kube-scheduler must not try preemption there, so it goes to
`FailedAndUnresolvableNodes`) or *resolvable* (it could run after something leaves:
`FailedNodes`, a preemption candidate). Messages are constant and name no node, so that
kube-scheduler's "0/N nodes are available: 3 <reason>, ..." histogram stays readable. The one
exception is a node taken out of service, whose reason is the node's own.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """Filter outcome codes, stored per candidate node; 0 means the pod fits."""

    FITS = 0
    # Unresolvable: no preemption can change these.
    UNKNOWN_NODE = 1
    NODE_UNAVAILABLE = 2
    NO_GPUS = 3
    MODEL_EXCLUDED = 4
    TOO_FEW_GPUS = 5
    ALL_MIG = 6
    UNHEALTHY = 7
    NO_SHAREABLE_GPU = 8
    NO_MPS_GPU = 9
    NO_TIME_SLICED_GPU = 10
    GPU_TOO_SMALL = 11
    CPU_CAPACITY = 12
    MEMORY_CAPACITY = 13
    # Resolvable: the pod fits once something leaves.
    INSUFFICIENT_WHOLE_GPUS = 20
    NO_GPU_WITH_ROOM = 21
    INSUFFICIENT_GPU_MEMORY = 22
    INSUFFICIENT_CPU = 23
    INSUFFICIENT_MEMORY = 24

    @property
    def unresolvable(self) -> bool:
        return 0 < self.value < 20

    @property
    def message(self) -> str:
        return MESSAGES[self]


MESSAGES: dict[Reason, str] = {
    Reason.FITS: "fits",
    Reason.UNKNOWN_NODE: "node unknown to gpusched",
    Reason.NODE_UNAVAILABLE: "node unavailable to gpusched",
    Reason.NO_GPUS: "node has no GPUs",
    Reason.MODEL_EXCLUDED: "GPU model not allowed by the pod",
    Reason.TOO_FEW_GPUS: "node has fewer GPUs of an allowed model than requested",
    Reason.ALL_MIG: "GPUs are MIG-partitioned (request nvidia.com/mig-* instead)",
    Reason.UNHEALTHY: "too few healthy GPUs",
    Reason.NO_SHAREABLE_GPU: "no GPU that allows sharing (all exclusive)",
    Reason.NO_MPS_GPU: "no GPU in MPS mode",
    Reason.NO_TIME_SLICED_GPU: "no time-sliced GPU",
    Reason.GPU_TOO_SMALL: "no GPU with that much memory",
    Reason.CPU_CAPACITY: "node CPU capacity below the request",
    Reason.MEMORY_CAPACITY: "node memory capacity below the request",
    Reason.INSUFFICIENT_WHOLE_GPUS: "not enough free whole GPUs",
    Reason.NO_GPU_WITH_ROOM: "no single GPU with enough free capacity",
    Reason.INSUFFICIENT_GPU_MEMORY: "no single GPU with enough free GPU memory",
    Reason.INSUFFICIENT_CPU: "insufficient CPU",
    Reason.INSUFFICIENT_MEMORY: "insufficient memory",
}
