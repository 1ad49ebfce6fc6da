"""Gangs and team quotas fed from the cluster, and the core's reclaim plan turned into evictions.

The core owns the rules (`scheduler.core.gatekeeper`, `reclaim`); this module only translates:
- namespaces' labels -> `set_namespace_labels` (a namespace's `gpusched.io/team`);
- ResourceQuotas on `requests.nvidia.com/gpu` / `requests.gpusched.io/gpu-milli` -> a team per
  namespace (`team_from_resource_quotas`; a team in `--config` takes precedence);
- scheduler-plugins PodGroups -> `set_pod_group(namespace, name, minMember)`;
- the current reclaim plan, plus the bound members of broken gangs -> `Victim`s for the
  reclaimer, which evicts them (leader only, through the Eviction API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.core.engine import Engine
from scheduler.core.quotas import team_from_resource_quotas
from scheduler.core.reclaim_plans import current_plans
from scheduler.kube.cache import NAMESPACES, POD_GROUPS, QUOTAS, ClusterCache
from scheduler.kube.reclaimer import Victim


class GateFeed:
    """A `ClusterCache.on_change` observer that keeps the engine's teams and gang sizes current."""

    def __init__(self, engine: Engine, cache: ClusterCache) -> None:
        self.engine = engine
        self.cache = cache
        self._quota_teams: dict[str, str] = {}
        """Namespace -> the team its ResourceQuotas made."""

    def changed(self, kind: str, key: str, obj: Mapping[str, Any] | None) -> None:
        gates = self.engine.gates
        if kind == NAMESPACES:
            gates.set_namespace_labels(key, obj)
            self._quotas_of(key)  # the team a namespace's quota makes is named by its label
        elif kind == QUOTAS:
            self._quotas_of(key.split("/", 1)[0])
        elif kind == POD_GROUPS:
            namespace, name = key.split("/", 1)
            min_member = (obj or {}).get("minMember")
            valid = isinstance(min_member, int) and not isinstance(min_member, bool) and min_member > 0
            gates.set_pod_group(namespace, name, min_member if valid else None)

    def _quotas_of(self, namespace: str) -> None:
        gates = self.engine.gates
        hards = [q.get("hard") or {} for (ns, _), q in sorted(self.cache.quotas.items()) if ns == namespace]
        team = team_from_resource_quotas(namespace, hards, team=self.cache.team_of(namespace))
        old = self._quota_teams.pop(namespace, None)
        if old is not None and (team is None or team.name != old):
            gates.remove_team(old)
        if team is not None:
            gates.set_team(team)
            self._quota_teams[namespace] = team.name


def victims(engine: Engine) -> list[Victim]:
    """What the reclaimer evicts now: reclaim plan victims (whole gangs), then broken gangs' members."""
    out: dict[str, Victim] = {}
    for plan in current_plans(engine.gates):
        for unit in plan.victims:
            for uid, pod in zip(unit.uids, unit.pods, strict=True):
                namespace, name = pod.split("/", 1)
                out.setdefault(uid, Victim(uid, namespace, name, for_pod="" if plan.ask.gang else plan.ask.label,
                                           reason=f"team {plan.ask.team} is below its guarantee and "
                                           f"needs the GPUs back for {plan.ask.label} (borrowed by team {unit.team})"))
    for gang, uids, reason in engine.gates.evictions():
        for uid in uids:
            alloc = engine.allocations.get(uid)
            if alloc is not None:
                out.setdefault(uid, Victim(uid, alloc.namespace, alloc.name,
                                           f"gang {gang} cannot complete ({reason}); its members run all or none"))
    return list(out.values())
