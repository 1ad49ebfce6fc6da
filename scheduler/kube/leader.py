"""Leader election on a `coordination.k8s.io/v1` Lease (client-go's leaderelection, in small).

Several gpusched replicas run; actions with effects on the whole cluster (evictions by the
reclaimer) must come from one of them. Each replica runs `LeaderElector.run()`:
- it holds the lease while it renews it every `retry_period_s` (a `replace` with the lease's
  resourceVersion, so two replicas can never both succeed on the same version);
- another replica takes over only when the holder has not renewed for `lease_duration_s`, as
  measured on the taker's own monotonic clock from the moment it last saw the lease change
  (the holder's `renewTime` is written by another machine's clock, never trusted for expiry);
- a holder that cannot renew within `renew_deadline_s` stops acting as leader at once (before
  anyone else may take over: renew_deadline < lease_duration);
- on a clean stop the holder gives the lease up (empty holder), so a successor need not wait.
`is_leader` is what callers check before each action; `changes` observers hear every flip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.kube.client import ApiError, KubeClient

log = logging.getLogger(__name__)

RELEASE_ATTEMPTS = 3
"""Tries to give the lease up on shutdown when a late renewal keeps conflicting with us."""
ROUND_GRACE_S = 5.0
"""How long shutdown waits for an election round already under way before giving the lease up."""


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "gpu-extender"
    namespace: str = "gpu-system"
    identity: str = ""
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("a lease identity is required")
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("lease timings must satisfy 0 < retry period < renew deadline < lease duration")


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: KubeClient, settings: LeaseSettings, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.client = client
        self.settings = settings
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self.is_leader = False
        self.changes: list[Callable[[bool], None]] = []
        self._observed: tuple[str, str] | None = None  # (holder, resourceVersion) last seen
        self._observed_at = 0.0
        self._renewed_at = 0.0

    async def run(self) -> None:
        round_: asyncio.Future | None = None
        try:
            while True:
                # Shielded: a round cancelled at shutdown still finishes, so its write cannot land
                # after the release below and leave the lease naming a replica that is gone.
                round_ = asyncio.ensure_future(self.try_acquire_or_renew())
                try:
                    await asyncio.shield(round_)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug: step down (never two reclaimers), and try again next round
                    log.exception("lease %s: election round failed", self.settings.name)
                    self._set(False)
                await self._sleep(self.settings.retry_period_s)
        finally:
            if round_ is not None and not round_.done():
                await asyncio.wait([round_], timeout=ROUND_GRACE_S)
            # Whether or not this replica knew it led: the API may name it (an acquisition that
            # landed as shutdown began). `release` gives the lease up only if it names this replica.
            await self.release()

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the lease afterwards."""
        now = self._monotonic()
        try:
            held = await self._round(now)
        except ApiError as e:
            log.info("lease %s: %s", self.settings.name, e)
            held = False
            if self.is_leader and now - self._renewed_at < self.settings.renew_deadline_s:
                return True  # a failed renewal, still within the renew deadline
        if held:
            self._renewed_at = now
        self._set(held)
        return held

    async def _round(self, now: float) -> bool:
        s = self.settings
        coordination = self.client.coordination
        try:
            lease = await self.client.call("read lease", coordination.read_namespaced_lease, s.name, s.namespace)
        except ApiError as e:
            if e.code != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace}, "spec": self._spec(transitions=0)}
            try:
                await self.client.call("create lease", coordination.create_namespaced_lease, s.namespace, body)
            except ApiError as e2:
                if e2.code == 409:
                    return False  # someone else created it first
                raise
            return True
        meta = lease.get("metadata") or {}
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        seen = (holder, str(meta.get("resourceVersion") or ""))
        if seen != self._observed:
            self._observed, self._observed_at = seen, now
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration_s)
        if holder and holder != s.identity and now - self._observed_at < duration:
            return False  # held, and renewed within its duration as far as we can tell
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == s.identity else 1)
        new_spec = self._spec(transitions=transitions)
        if holder == s.identity and spec.get("acquireTime"):
            new_spec["acquireTime"] = spec["acquireTime"]
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace, "resourceVersion": meta.get("resourceVersion")},
                "spec": new_spec}
        try:
            await self.client.call("update lease", coordination.replace_namespaced_lease, s.name, s.namespace, body)
        except ApiError as e:
            if e.code == 409:
                return False  # another replica wrote it first
            raise
        return True

    def _spec(self, *, transitions: int) -> dict[str, Any]:
        now = _micro_time(self._wall())
        return {"holderIdentity": self.settings.identity, "leaseDurationSeconds": int(self.settings.lease_duration_s),
                "acquireTime": now, "renewTime": now, "leaseTransitions": transitions}

    async def release(self) -> None:
        """Give the lease up (clean shutdown), so a successor does not wait out the duration."""
        s = self.settings
        was_leader = self.is_leader
        self._set(False)
        # A renewal cancelled on its way out may still land (its thread runs on) between our read and
        # our write: that is a conflict, and reading again shows the lease still ours to give up.
        for attempt in range(RELEASE_ATTEMPTS):
            try:
                lease = await self.client.call("read lease", self.client.coordination.read_namespaced_lease,
                                               s.name, s.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != s.identity:
                    return
                spec = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
                meta = lease.get("metadata") or {}
                await self.client.call("update lease", self.client.coordination.replace_namespaced_lease, s.name,
                                       s.namespace, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                     "metadata": {"name": s.name, "namespace": s.namespace,
                                                                  "resourceVersion": meta.get("resourceVersion")},
                                                     "spec": spec})
                return
            except ApiError as e:
                if e.code == 409 and attempt + 1 < RELEASE_ATTEMPTS:
                    await self._sleep(0.05)
                    continue
                log.log(logging.WARNING if was_leader else logging.INFO,
                        "lease %s not released (a successor waits it out): %s", s.name, e)
                return

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            self.is_leader = leader
            log.info("lease %s/%s: %s", self.settings.namespace, self.settings.name,
                     "acquired: this replica leads" if leader else "not held by this replica")
            for observer in self.changes:
                observer(leader)
