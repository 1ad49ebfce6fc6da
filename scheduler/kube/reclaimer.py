"""Carrying out the core's reclaim plan with the Eviction API, from the Lease holder only.

Deciding is pure and lives in the core (which borrowed pods to take back, DESIGN §4 "Team
quotas"); this module only acts on the plan: one `policy/v1` Eviction per victim, with the
victim's UID as precondition (a re-created namesake is never evicted). The API server enforces
PodDisruptionBudgets: a 429 means "not now", and the victim is asked for again on a later round
while the plan still names it. A pod already evicted (terminating) is not asked for twice, and
while any pod this replica evicted is still terminating no new eviction starts: the books count
its GPUs until it is gone, so the next plan, made on them, would name one more victim for the same
shortage (a pod stuck terminating, a finalizer that never clears, holds reclaim back for
`stuck_after_s` at most).

Only the replica holding the `gpu-extender` Lease evicts (`leader.py`); the others keep their
books current but never act, so two replicas never evict for the same shortage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scheduler.kube.client import ApiError, KubeClient
from scheduler.kube.events import WARNING, EventRecorder, PodRef

log = logging.getLogger(__name__)

EVICTED, BLOCKED, GONE, FAILED = "evicted", "blocked_by_pdb", "gone", "error"


@dataclass(frozen=True)
class Victim:
    """A pod the plan takes back, and the reason its event gives."""

    uid: str
    namespace: str
    name: str
    reason: str
    for_pod: str = ""
    """`namespace/name` of the pending pod the GPUs are taken back for ("" for a gang or a broken gang)."""


class Reclaimer:
    def __init__(self, client: KubeClient, *, plan: Callable[[], Sequence[Victim]], is_leader: Callable[[], bool],
                 events: EventRecorder | None = None, interval_s: float = 10.0,
                 on_result: Callable[[str], None] | None = None,
                 terminating: Callable[[str], bool] = lambda uid: False, stuck_after_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_freed: Callable[[str], None] = lambda pod: None) -> None:
        """`terminating(uid)`: the pod still exists, being deleted (the cache's view). `on_freed(pod)`:
        the victims evicted for `pod` are gone (kube-scheduler parked it; it should try again now)."""
        self.on_freed = on_freed
        self._for_pod: dict[str, str] = {}
        self.client = client
        self.plan = plan
        self.is_leader = is_leader
        self.events = events
        self.interval_s = interval_s
        self.on_result = on_result or (lambda result: None)
        self._asked: set[str] = set()
        self.terminating = terminating
        self.stuck_after_s = stuck_after_s
        self.clock = clock
        self._evicted_at: dict[str, float] = {}
        """UID -> when this replica evicted it, until it is gone."""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.reclaim_once()
            except Exception:  # a bug must not end reclaim for good: logged, and tried again next round
                log.exception("reclaim round failed")

    async def reclaim_once(self) -> dict[str, str]:
        """One round: evict what the plan names (leader only); victim UID -> result."""
        if not self.is_leader():
            return {}
        now = self.clock()
        still = {uid: at for uid, at in self._evicted_at.items()
                 if self.terminating(uid) and now - at < self.stuck_after_s}
        for uid in set(self._evicted_at) - set(still):
            pod = self._for_pod.pop(uid, "")
            if pod and not any(self._for_pod.get(u) == pod for u in still):
                self.on_freed(pod)
        self._evicted_at = still
        if self._evicted_at:
            return {}  # their GPUs come back once they are gone; a plan made now would over-evict
        victims = list(self.plan())
        self._asked &= {v.uid for v in victims}  # forget pods the plan no longer needs
        results: dict[str, str] = {}
        for victim in victims:
            if victim.uid in self._asked:
                continue
            result = await self.evict(victim)
            results[victim.uid] = result
            self.on_result(result)
            if result in (EVICTED, GONE):
                self._asked.add(victim.uid)
            if result == EVICTED:
                self._evicted_at[victim.uid] = now
                self._for_pod[victim.uid] = victim.for_pod
        return results

    async def evict(self, victim: Victim) -> str:
        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": victim.name, "namespace": victim.namespace},
                "deleteOptions": {"preconditions": {"uid": victim.uid}}}
        ref = PodRef(victim.namespace, victim.name, victim.uid)
        try:
            await self.client.call("evict pod", self.client.core.create_namespaced_pod_eviction, victim.name,
                                   victim.namespace, body)
        except ApiError as e:
            if e.code == 429:
                self._event(ref, "GPUReclaimBlocked", f"gpusched would reclaim this pod's GPUs ({victim.reason}) "
                                                      f"but its PodDisruptionBudget allows no disruption now")
                return BLOCKED
            if e.code in (404, 409):
                return GONE
            log.warning("evicting %s/%s failed: %s", victim.namespace, victim.name, e)
            return FAILED
        self._event(ref, "GPUReclaim", f"gpusched evicted this pod to reclaim its GPUs: {victim.reason}")
        log.info("evicted %s/%s: %s", victim.namespace, victim.name, victim.reason)
        return EVICTED

    def _event(self, ref: PodRef, reason: str, message: str) -> None:
        if self.events is not None:
            self.events.emit(ref, WARNING, reason, message)
