"""Nudging kube-scheduler to retry pods it parked after an error rather than a verdict.

When kube-scheduler's call to the extender fails (the sidecar restarting, a bind past its deadline),
it marks the pod `PodScheduled=False, reason SchedulerError` and parks it with the unschedulable
pods, which it retries only on a cluster event that concerns them or at its 5-minute flush
(`podMaxInUnschedulablePodsDuration`). An extender is no plugin: no event names it. So a pod that
met a restarting extender waited up to five minutes for GPUs that were free all along.

Any update of a parked pod's metadata moves it back to kube-scheduler's queue (after its backoff).
`Requeuer` writes the annotation `gpusched.io/requeued` on such pods: once per pod per `interval_s`
while the error stands, at most `batch` pods a round, only in the replica that leads (or the only
one, without election), so the API server sees a bounded trickle rather than a storm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.kube.cache import ClusterCache
from scheduler.kube.client import STRATEGIC_MERGE, ApiError, KubeClient

log = logging.getLogger(__name__)
REQUEUED_ANNOTATION = "gpusched.io/requeued"


@dataclass(frozen=True)
class RequeueSettings:
    interval_s: float = 2.0
    """How often stalled pods are looked for."""
    per_pod_s: float = 15.0
    """A pod is nudged again only this long after its last nudge, if its error still stands."""
    batch: int = 200


class Requeuer:
    def __init__(self, client: KubeClient, cache: ClusterCache, *, may_write: Callable[[], bool],
                 settings: RequeueSettings = RequeueSettings(), clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cache = cache
        self.may_write = may_write
        self.settings = settings
        self.clock = clock
        self._nudged: dict[str, float] = {}
        self.nudges = 0
        self.on_nudge: list[Callable[[], None]] = []
        """Observers of each pod nudged (metrics)."""

    def due(self) -> list:
        """The stalled pods to nudge now (pure: reads the cache and the clock)."""
        now = self.clock()
        stalled = self.cache.stalled_pods()
        live = {r.uid for r in stalled}
        for uid in [u for u in self._nudged if u not in live]:
            del self._nudged[uid]
        due = [r for r in stalled if now - self._nudged.get(r.uid, -1e18) >= self.settings.per_pod_s]
        return due[:self.settings.batch]

    async def round(self) -> int:
        if not self.may_write():
            return 0
        pods = self.due()
        now = self.clock()
        for record in pods:
            self._nudged[record.uid] = now
        await asyncio.gather(*(self._nudge(r) for r in pods))
        return len(pods)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await self.round()
            except Exception:  # a round must never end the loop
                log.exception("requeue round failed")

    async def nudge(self, key: str) -> None:
        """Requeue one pending pod by `namespace/name` now (the reclaimer freed its GPUs)."""
        record = next((r for r in self.cache.pending_pods() if r.key == key), None)
        if record is not None:
            await self._nudge(record)

    async def _nudge(self, record) -> None:
        stamp = f"{time.time():.3f}"
        patch = {"metadata": {"uid": record.uid, "annotations": {REQUEUED_ANNOTATION: stamp}}}
        try:
            await self.client.call("patch pod", self.client.core.patch_namespaced_pod, record.name, record.namespace,
                                   patch, _content_type=STRATEGIC_MERGE, _request_timeout=10.0)
            self.nudges += 1
            for observer in self.on_nudge:
                observer()
            log.info("requeued %s (%s)", record.key, record.scheduler_error[:200] or "its GPUs were reclaimed")
        except ApiError as e:
            log.info("could not requeue %s: %s", record.key, e)
