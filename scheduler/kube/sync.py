"""Keeping the cache in step with the cluster: one reflector per kind, readiness, the heartbeat sweep.

What is mirrored, and why (all of it is read-only):
- nodes: capacity, GPUs (the agent's annotation or GFD labels), agent heartbeats;
- pods, of every scheduler: anything bound holds capacity (DESIGN §1: "a pod bound by anything
  else is respected");
- namespaces: team labels; ResourceQuotas: team GPU quotas; scheduler-plugins PodGroups: gang
  sizes (`minMember`). PodGroups are optional: without the CRD there are none.

`synced` is set once every kind has been listed in full, in the order below (nodes first, so
pods land on known nodes); `/readyz` and the extender's verbs wait for it, so nothing is
decided on half a picture. After that the books only move by watch events, relists (which
replace whole kinds in one step on the loop), and the heartbeat sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.kube.cache import NAMESPACES, NODES, POD_GROUPS, PODS, QUOTAS, ClusterCache
from scheduler.kube.client import KubeClient
from scheduler.kube.reflector import Reflector, ReflectorSettings, Resource

log = logging.getLogger(__name__)

POD_GROUP_API = {"group": "scheduling.x-k8s.io", "version": "v1alpha1", "plural": "podgroups"}

RESOURCES = (
    Resource(NODES, lambda c: c.core.list_node),
    Resource(PODS, lambda c: c.core.list_pod_for_all_namespaces),
    Resource(NAMESPACES, lambda c: c.core.list_namespace),
    Resource(QUOTAS, lambda c: c.core.list_resource_quota_for_all_namespaces),
    Resource(POD_GROUPS, lambda c: c.custom.list_cluster_custom_object, kwargs=POD_GROUP_API, optional=True),
)


@dataclass(frozen=True)
class SyncSettings:
    reflector: ReflectorSettings = field(default_factory=ReflectorSettings)
    sweep_interval_s: float = 30.0
    """How often agent heartbeats are re-judged (a quarter of the default 2-minute staleness)."""


class KubeSync:
    def __init__(self, client: KubeClient, cache: ClusterCache, *, settings: SyncSettings = SyncSettings(),
                 on_restart: Callable[[str, str], None] | None = None) -> None:
        self.cache = cache
        self.settings = settings
        self.reflectors = [Reflector(client, r, cache, settings=settings.reflector, on_restart=on_restart)
                           for r in RESOURCES]
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """List every kind in order, then keep watching in the background."""
        for reflector in self.reflectors:
            self._tasks.append(asyncio.create_task(reflector.run(), name=f"reflector-{reflector.resource.kind}"))
            await reflector.synced.wait()
        self.synced.set()
        log.info("synced: %d nodes, %d pods", len(self.cache.nodes), len(self.cache.pods))
        self._tasks.append(asyncio.create_task(self._sweep(), name="heartbeat-sweep"))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                self.cache.sweep()
            except Exception:  # a bug must not stop the sweeping; it is logged with its traceback
                log.exception("sweeping heartbeats and pending pods failed")

    def resource_versions(self) -> dict[str, str]:
        return {r.resource.kind: r.resource_version for r in self.reflectors}

    async def stop(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
