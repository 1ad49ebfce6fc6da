"""Making a bind real: record the GPUs on the pod, then create the Binding (DESIGN §3).

`KubeBinder.commit(alloc)` is the `Binder` of `scheduler.extender.service`. The service has put
the allocation in the books under its bind lock; this makes it durable, or fails with nothing
half-written so the service can release it:
  1. read the pod: the same UID (not a re-created namesake), not being deleted, not bound
     elsewhere. Already bound to this node (kube-scheduler retrying a bind whose answer it
     lost): success, nothing to do;
  2. strategic-merge patch of the allocation's annotations (`Allocation.annotations()`: the
     GPUs, the share, the MPS limits), with the UID and resourceVersion of step 1 as
     preconditions. A conflict (the pod changed since step 1) goes back to step 1, a few times;
     the annotations are written before the Binding so the webhook's downward-API environment
     and the kubelet see them when the container starts;
  3. create `pods/binding` with the pod's UID as precondition and the same annotations (the
     API server copies a Binding's annotations onto the pod atomically with `spec.nodeName`);
  4. a Binding refused for good (409: bound meanwhile, UID mismatch; 4xx) is checked against
     the pod (did an earlier, timed-out attempt land? then it is a success), otherwise the
     annotations of step 2 are removed again (resourceVersion-guarded, so a Binding landing
     meanwhile is never stripped of its record) and the bind fails.
Throttling (429), server errors (5xx) and timeouts are retried with capped exponential backoff
and jitter until `deadline_s`, which stays below the extender's `httpTimeout` (5 s in deploy/).
When the outcome cannot be known (the API server unreachable after the Binding was sent), the
bind fails without a rollback: annotations on an unbound pod are inert (the cache ignores them),
and if the Binding did land, the watch restores the allocation from them.
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
from scheduler.kube.client import STRATEGIC_MERGE, ApiError, KubeClient
from scheduler.kube.events import NORMAL, WARNING, EventRecorder, PodRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinderSettings:
    deadline_s: float = 4.0
    conflict_attempts: int = 3
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(initial_s=0.05, cap_s=1.0))


class _Unknown(Exception):
    """The API server did not answer in time: the outcome of the last write is unknown."""


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
        self.after_annotate: list[Callable[[Allocation], Awaitable[None]]] = []
        """Test seam: awaited between the annotation patch and the Binding (a crash lands here)."""

    # ---------------------------------------------------------------- Binder protocol
    async def commit(self, alloc: Allocation, *, waited_s: float = 0.0) -> None:
        deadline = self._clock() + self.settings.deadline_s - waited_s
        annotations = alloc.annotations()
        try:
            try:
                for hook in self.before_commit:
                    await self._within(deadline, hook(alloc))
                if await self._annotate(alloc, annotations, deadline):
                    return  # already bound to this node
                for hook in self.after_annotate:
                    await hook(alloc)
                await self._bind(alloc, annotations, deadline)
            except ApiError as e:  # out of retries or time: a failed bind, never an HTTP 500
                raise BindFailed(f"the API server did not answer: {e.message or e.reason}") from None
        except BindFailed as e:
            self._event(alloc, WARNING, "FailedScheduling", f"gpusched could not bind to {alloc.node}: {e}")
            raise
        self._event(alloc, NORMAL, "Scheduled", f"gpusched assigned {describe(alloc)} on {alloc.node}")

    async def forget(self, alloc: Allocation) -> None:
        """Nothing to undo: in a cluster the pod's own lifecycle (the watch) releases its books."""

    # ------------------------------------------------------------------------ steps
    async def _annotate(self, alloc: Allocation, annotations: Mapping[str, str], deadline: float) -> bool:
        """Steps 1-2; True when the pod turned out to be bound to this node already."""
        core = self.client.core
        for attempt in range(self.settings.conflict_attempts):
            try:
                pod = await self._call("read pod", deadline, core.read_namespaced_pod, alloc.name, alloc.namespace)
            except ApiError as e:
                if e.code == 404:
                    raise BindFailed(f"pod {alloc.key} was deleted before it was bound") from None
                raise
            if self._check(pod, alloc):
                return True
            meta = pod.get("metadata") or {}
            patch = {"metadata": {"uid": alloc.uid, "resourceVersion": meta.get("resourceVersion"),
                                  "annotations": dict(annotations)}}
            try:
                await self._call("patch pod", deadline, core.patch_namespaced_pod, alloc.name, alloc.namespace, patch,
                                 _content_type=STRATEGIC_MERGE)
                return False
            except ApiError as e:
                if e.code == 409 and attempt + 1 < self.settings.conflict_attempts:
                    continue  # the pod changed since we read it: read it again
                raise BindFailed(f"cannot record the GPUs on the pod: {e.message or e.reason}") from None
        raise BindFailed("the pod kept changing while gpusched recorded its GPUs")  # pragma: no cover

    async def _bind(self, alloc: Allocation, annotations: Mapping[str, str], deadline: float) -> None:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": alloc.name, "namespace": alloc.namespace, "uid": alloc.uid,
                             "annotations": dict(annotations)},
                "target": {"apiVersion": "v1", "kind": "Node", "name": alloc.node}}
        try:
            await self._call("create binding", deadline, self.client.core.create_namespaced_pod_binding,
                             alloc.name, alloc.namespace, body)
            return
        except ApiError as e:
            refusal = e
        # Did an earlier attempt land after all (its answer lost, then "already assigned")?
        try:
            pod = await self._call("read pod", self._clock() + 2.0, self.client.core.read_namespaced_pod,
                                   alloc.name, alloc.namespace)
        except ApiError as e:
            if e.code == 404:
                raise BindFailed("the pod was deleted while binding") from None
            raise BindFailed(f"binding failed ({refusal.message or refusal.reason}) and the pod cannot be "
                             f"read back ({e.message or e.reason})") from None
        if self._check_bound(pod, alloc):
            return
        await self._roll_back(alloc, annotations)
        raise BindFailed(f"the API server refused the binding: {refusal.message or refusal.reason}")

    async def _roll_back(self, alloc: Allocation, annotations: Mapping[str, str]) -> None:
        """Take our annotations off an unbound pod again (resourceVersion-guarded)."""
        core = self.client.core
        for _ in range(self.settings.conflict_attempts):
            deadline = self._clock() + 2.0
            try:
                pod = await self._call("read pod", deadline, core.read_namespaced_pod, alloc.name, alloc.namespace)
                meta = pod.get("metadata") or {}
                if meta.get("uid") != alloc.uid or (pod.get("spec") or {}).get("nodeName"):
                    return
                current = meta.get("annotations") or {}
                remove = {k: None for k, v in annotations.items() if current.get(k) == v}
                if not remove:
                    return
                await self._call("patch pod", deadline, core.patch_namespaced_pod, alloc.name, alloc.namespace,
                                 {"metadata": {"uid": alloc.uid, "resourceVersion": meta.get("resourceVersion"),
                                               "annotations": remove}}, _content_type=STRATEGIC_MERGE)
                return
            except ApiError as e:
                if e.code != 409:
                    log.warning("could not remove gpusched's record from unbound pod %s: %s", alloc.key, e)
                    return

    async def _within(self, deadline: float, waiting: Awaitable[None]) -> None:
        try:
            await asyncio.wait_for(waiting, max(0.0, deadline - self._clock()))
        except TimeoutError:
            raise BindFailed("the gang's reservation was not written to its pods within the bind deadline") from None

    # ----------------------------------------------------------------------- checks
    def _check(self, pod: Mapping[str, Any], alloc: Allocation) -> bool:
        meta = pod.get("metadata") or {}
        if meta.get("uid") != alloc.uid:
            raise BindFailed(f"pod {alloc.key} was re-created (UID {meta.get('uid')}, not {alloc.uid})")
        if meta.get("deletionTimestamp"):
            raise BindFailed(f"pod {alloc.key} is being deleted")
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != alloc.node:
            raise BindFailed(f"pod {alloc.key} is already bound to {node}")
        return bool(node)

    @staticmethod
    def _check_bound(pod: Mapping[str, Any], alloc: Allocation) -> bool:
        return ((pod.get("metadata") or {}).get("uid") == alloc.uid
                and (pod.get("spec") or {}).get("nodeName") == alloc.node)

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
                return await self.client.call(operation, method, *args, _request_timeout=timeout, **kwargs)
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
