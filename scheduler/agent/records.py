"""A pod's GPU record as the extender wrote it (DESIGN §3 "What the extender records").

Pure: a Pod API object (a plain dict, as the Kubernetes client serialises it) in, a
`PodRecord` out. Which pods count: bound to this node and not finished; a finished pod's
GPUs are free whatever its annotations still say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.core import contract as c
from scheduler.core.quantity import QuantityError, to_integer

_FINISHED = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One running pod's GPU bookkeeping. `recorded` is `gpusched.io/gpus`, in its order."""

    namespace: str
    name: str
    uid: str
    whole_gpus: int = 0
    """`nvidia.com/gpu` over the pod's containers (init containers run before, not beside)."""
    share: bool = False
    """A share (`gpusched.io/gpu-milli` granted): no device plugin allocates it."""
    recorded: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def has_record(self) -> bool:
        return bool(self.recorded)


def record_from_pod(pod: Mapping[str, Any]) -> PodRecord | None:
    """The pod's record, or None when the pod is finished or uses no GPU at all."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if status.get("phase") in _FINISHED:
        return None
    annotations = meta.get("annotations") or {}
    recorded = tuple(u.strip() for u in str(annotations.get(c.ASSIGNED_GPUS_ANNOTATION, "")).split(",") if u.strip())
    whole = sum(_gpu_limit(container) for container in spec.get("containers") or [])
    share = c.GRANTED_MILLI_ANNOTATION in annotations
    if not recorded and whole == 0:
        return None
    return PodRecord(namespace=meta.get("namespace") or "default", name=meta.get("name") or "",
                     uid=meta.get("uid") or "", whole_gpus=whole, share=share and whole == 0, recorded=recorded)


def _gpu_limit(container: Mapping[str, Any]) -> int:
    resources = container.get("resources") or {}
    # Extended resources must have requests == limits; either may be the one written.
    for key in ("limits", "requests"):
        value = (resources.get(key) or {}).get(c.GPU_RESOURCE)
        if value is not None:
            try:
                return max(0, to_integer(value))
            except QuantityError:
                return 0
    return 0
