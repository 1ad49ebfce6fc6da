"""Making a bind real: one Binding that carries the record (DESIGN §3).

`KubeBinder.commit(alloc)` is the `Binder` of `scheduler.extender.service`. The service has put
the allocation in the books; this makes it durable, or fails with nothing written so the service
can release it:
  1. wait for what must be durable first (a gang member: its reservation on the pods);
  2. create `pods/binding` with the pod's UID as precondition and the allocation's annotations
     (`Allocation.annotations()`: the GPUs, the share, the MPS limits). The API server copies a
     Binding's annotations onto the pod in the same write that sets `spec.nodeName`, so a bound
     pod always carries its record, the kubelet and the webhook's downward-API environment see
     both at once, and a crash can never leave a record on an unbound pod;
  3. a Binding refused for good (409: bound meanwhile, UID mismatch, being deleted; other 4xx)
     is explained from the pod as it is now: already bound to this node (an earlier attempt
     landed, its answer lost, or kube-scheduler retried) is a success; anything else fails the
     bind with the reason.
One write per bind, as kube-scheduler's own binder makes: an annotation patch before the
Binding (three calls a bind with the read) tripled the API load of a burst, and its update event
reached kube-scheduler while the pod was assumed.
Throttling (429), server errors (5xx) and timeouts are retried with capped exponential backoff
and jitter until `deadline_s`, which stays below the extender's `httpTimeout` (5 s in deploy/); the
deadline bounds the whole call, waiting for a free API thread included, and counts the time the
bind request already waited.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.allocation import Allocation
from scheduler.extender.service import BindFailed
from scheduler.kube.backoff import Backoff, BackoffPolicy
from scheduler.kube.client import ApiError, KubeClient
from scheduler.kube.events import NORMAL, WARNING, EventRecorder, PodRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinderSettings:
    deadline_s: float = 4.0
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(initial_s=0.05, cap_s=1.0))


class KubeBinder:
    def __init__(self, client: KubeClient, *, events: EventRecorder | None = None,
                 settings: BinderSettings = BinderSettings(), rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.client = client
        self.events = events
        self.settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self.retries = 0
        self.before_commit: list[Callable[[Allocation], Awaitable[None]]] = []
        """Awaited before anything is written, within the deadline (a gang member waits until its
        reservation is on the pods: `reservation_writer.ReservationWriter.settled`)."""
        self.before_binding: list[Callable[[Allocation], Awaitable[None]]] = []
        """Test seam: awaited just before the Binding is sent (a crash lands here)."""

    # ---------------------------------------------------------------- Binder protocol
    async def commit(self, alloc: Allocation, *, waited_s: float = 0.0) -> None:
        deadline = self._clock() + self.settings.deadline_s - waited_s
        try:
            try:
                for hook in self.before_commit:
                    await self._within(deadline, hook(alloc))
                for hook in self.before_binding:
                    await hook(alloc)
                await self._bind(alloc, deadline)
            except ApiError as e:  # out of retries or time: a failed bind, never an HTTP 500
                raise BindFailed(f"the API server did not answer: {e.message or e.reason}") from None
        except BindFailed as e:
            self._event(alloc, WARNING, "FailedScheduling", f"gpusched could not bind to {alloc.node}: {e}")
            raise
        self._event(alloc, NORMAL, "Scheduled", f"gpusched assigned {describe(alloc)} on {alloc.node}")

    async def forget(self, alloc: Allocation) -> None:
        """Nothing to undo: in a cluster the pod's own lifecycle (the watch) releases its books."""

    # ------------------------------------------------------------------------ steps
    async def _bind(self, alloc: Allocation, deadline: float) -> None:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": alloc.name, "namespace": alloc.namespace, "uid": alloc.uid,
                             "annotations": dict(alloc.annotations())},
                "target": {"apiVersion": "v1", "kind": "Node", "name": alloc.node}}
        try:
            await self._call("create binding", deadline, self.client.core.create_namespaced_pod_binding,
                             alloc.name, alloc.namespace, body)
            return
        except ApiError as e:
            refusal = e
        if refusal.transient:  # out of time, the outcome unknown: the watch restores it if it landed
            raise refusal
        try:
            pod = await self._call("read pod", self._clock() + 2.0, self.client.core.read_namespaced_pod,
                                   alloc.name, alloc.namespace)
        except ApiError as e:
            if e.code == 404:
                raise BindFailed(f"pod {alloc.key} was deleted before it was bound") from None
            raise BindFailed(f"binding failed ({refusal.message or refusal.reason}) and the pod cannot be "
                             f"read back ({e.message or e.reason})") from None
        if self._check(pod, alloc):
            return
        raise BindFailed(f"the API server refused the binding: {refusal.message or refusal.reason}")

    async def _within(self, deadline: float, waiting: Awaitable[None]) -> None:
        try:
            await asyncio.wait_for(waiting, max(0.0, deadline - self._clock()))
        except TimeoutError:
            raise BindFailed("the gang's reservation was not written to its pods within the bind deadline") from None

    # ----------------------------------------------------------------------- checks
    def _check(self, pod: Mapping[str, Any], alloc: Allocation) -> bool:
        """True when the pod is bound to this node already; BindFailed naming what went wrong."""
        meta = pod.get("metadata") or {}
        if meta.get("uid") != alloc.uid:
            raise BindFailed(f"pod {alloc.key} was re-created (UID {meta.get('uid')}, not {alloc.uid})")
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != alloc.node:
            raise BindFailed(f"pod {alloc.key} is already bound to {node}")
        if node:
            return True
        if meta.get("deletionTimestamp"):
            raise BindFailed(f"pod {alloc.key} is being deleted")
        return False

    # ------------------------------------------------------------------- plumbing
    async def _call(self, operation: str, deadline: float, method: Callable[..., Any], *args: Any,
                    **kwargs: Any) -> dict[str, Any]:
        """One API call, retried while transient and time remains; the last error otherwise."""
        backoff = Backoff(self.settings.backoff, rng=self._rng)
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ApiError(0, "Timeout", f"{operation}: no answer within the bind deadline")
            timeout = (min(self.client.settings.connect_timeout_s, remaining), max(0.05, remaining))
            try:
                return await asyncio.wait_for(
                    self.client.call(operation, method, *args, _request_timeout=timeout, **kwargs), remaining)
            except TimeoutError:  # still queued for an API thread, or the answer late: out of time
                raise ApiError(0, "Timeout", f"{operation}: no answer within the bind deadline") from None
            except ApiError as e:
                if not e.transient:
                    raise
                pause = e.retry_after if e.retry_after is not None else backoff.next()
                if self._clock() + pause >= deadline:
                    raise
                self.retries += 1
                log.info("%s for %s: %s; retrying in %.2fs", operation, args[0] if args else "", e, pause)
                await self._sleep(pause)

    def _event(self, alloc: Allocation, type_: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events.emit(PodRef(alloc.namespace, alloc.name, alloc.uid), type_, reason, message)


def describe(alloc: Allocation) -> str:
    """`GPUs GPU-a, GPU-b` / `500 milli-GPU and 20480 MiB of GPU GPU-a (MPS)` / `no GPU`."""
    if not alloc.gpu_uuids:
        return "no GPU"
    if alloc.share:
        memory = alloc.gpu_memory_mib[0] if alloc.gpu_memory_mib else 0
        return f"{alloc.milli} milli-GPU and {memory} MiB of GPU {alloc.gpu_uuids[0]}" + (" (MPS)" if alloc.mps else "")
    return ("GPU " if len(alloc.gpu_uuids) == 1 else "GPUs ") + ", ".join(alloc.gpu_uuids)
