"""Which `gpusched.io/gpus` records the books believe (docs/security.md, "Trusted records").

A record is a pod annotation, and anyone who may patch a pod, or create one with
`spec.nodeName` set, can write one: a CPU-only pod naming all eight GPUs of a node would make
them look taken. So a record counts only where gpusched could have written it:

1. a pod of gpusched's scheduler whose `gpusched.io/node` names the node it is bound to: the
   binder writes both before the Binding, so a record copied into a pod that something else
   placed names another node or none;
2. a pod of another scheduler that asks the device plugin for whole GPUs (`nvidia.com/gpu`):
   it holds that many GPUs whatever its annotations say, and its record (the agent writes it
   from the kubelet's pod-resources) only says *which*. It counts as whole GPUs while it names
   no more of them than the pod asks for; a share is granted by gpusched's binder only.

Anything else is set aside with a reason; the pod then holds what an unrecorded pod holds
(`core.unrecorded` guesses its device-plugin GPUs; without those, CPU and memory only).

Pure: a bound pod's fields in, a verdict out. Must not know the cache or the Engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.core import contract as c
from scheduler.core.allocation import parse_assigned


@dataclass(frozen=True)
class RecordVerdict:
    """The record the books may apply (empty: none), and why a record was set aside ("": it wasn't)."""

    uuids: tuple[str, ...] = ()
    milli: int | None = None
    memory_mib: int | None = None
    distrust: str = ""


def judge_record(annotations: Mapping[str, str], *, node: str, pod_scheduler: str, scheduler_name: str,
                 device_plugin_gpus: int) -> RecordVerdict:
    """The part of a bound pod's record the books count (rules 1 and 2 of the module docstring).

    `device_plugin_gpus`: the pod's `nvidia.com/gpu` request, the GPUs the kubelet hands it anyway.
    """
    uuids, milli, memory = parse_assigned(annotations)
    if not uuids:
        return RecordVerdict()
    if pod_scheduler == scheduler_name:
        named = annotations.get(c.ASSIGNED_NODE_ANNOTATION, "")
        if named == node:
            return RecordVerdict(uuids, milli, memory)
        where = f"names node {named}" if named else f"has no {c.ASSIGNED_NODE_ANNOTATION}"
        return RecordVerdict(distrust=f"record of {len(uuids)} GPU(s) {where} but the pod is bound to {node}: "
                                      f"not written by gpusched's binder")
    if len(uuids) <= device_plugin_gpus:
        return RecordVerdict(uuids)
    return RecordVerdict(distrust=f"pod of {pod_scheduler} names {len(uuids)} GPU(s) in "
                                  f"{c.ASSIGNED_GPUS_ANNOTATION} but requests {device_plugin_gpus} {c.GPU_RESOURCE}: "
                                  f"only gpusched's binder records more than the device plugin hands out")
