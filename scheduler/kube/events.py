"""Events on pods (core/v1), so `kubectl describe pod` says what gpusched did and why.

kube-scheduler already records `Scheduled` ("Successfully assigned ...") and `FailedScheduling`
(with the filter's per-node reasons). gpusched adds what only it knows, from its own component:
- `Scheduled`: which GPUs the pod got (UUIDs, share, MPS limits);
- `FailedScheduling`: why the bind was refused or failed (gang, quota, model, capacity,
  an API conflict), in the core's words;
- reclaim (`GPUReclaim`) and gang timeouts (`GangTimeout`).
Events are best effort: they never delay or fail a bind. `emit` queues the write and returns;
`drain` waits for what is queued (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from scheduler.core.staleness import format_rfc3339
from scheduler.kube.client import ApiError, KubeClient

log = logging.getLogger(__name__)

COMPONENT = "gpusched"
MAX_MESSAGE = 1024
NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str


class EventRecorder:
    def __init__(self, client: KubeClient, *, instance: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 max_in_flight: int = 256) -> None:
        self.client = client
        self.instance = instance
        self.clock = clock
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task] = set()
        self.dropped = 0

    def emit(self, pod: PodRef, type_: str, reason: str, message: str) -> None:
        if len(self._tasks) >= self.max_in_flight:  # the API server is struggling: don't pile on
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._write(pod, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def body(self, pod: PodRef, type_: str, reason: str, message: str) -> dict:
        now = format_rfc3339(self.clock())
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 1] + "…"
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{pod.name}.", "namespace": pod.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                               "uid": pod.uid},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "reportingInstance": self.instance,
            "action": "Scheduling",
        }

    async def _write(self, pod: PodRef, type_: str, reason: str, message: str) -> None:
        try:
            await self.client.call("create event", self.client.core.create_namespaced_event, pod.namespace,
                                   self.body(pod, type_, reason, message))
        except ApiError as e:
            log.info("event %s on %s/%s not recorded: %s", reason, pod.namespace, pod.name, e)
