"""PodDisruptionBudget arithmetic: the status the disruption controller would write into a PDB. Pure.

    currentHealthy     = matched pods that are Ready and not being deleted
    minAvailable: N    -> expectedPods = matched pods, desiredHealthy = N
    minAvailable: P%   -> expectedPods = scale, desiredHealthy = ceil(P% of scale)
    maxUnavailable: M  -> expectedPods = scale, desiredHealthy = max(0, scale - M)   (M% of scale rounded up)
    disruptionsAllowed = max(0, currentHealthy - desiredHealthy)

"scale" is the sum of the matched pods' controllers' replica counts. As upstream, a matched pod without a
controller ownerReference makes a scale-based budget fail to sync: disruptionsAllowed 0, condition
SyncFailed, observedGeneration left behind (so evictions answer "still being processed").
Simplified: the fake serves no workload controllers, so a controller is taken to keep the replica count it
had: scale is the most managed pods the budget has seen (its previous expectedPods) or the pods now matched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from . import selectors


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def covers(pdb: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether the eviction subresource applies this PDB to the pod (an empty selector covers nothing there)."""
    selector = (pdb.get("spec") or {}).get("selector")
    if selectors.is_empty_selector_object(selector):
        return False
    return selectors.match_label_selector_object(selector, _labels(pod))


def synced_status(pdb: dict[str, Any], pods: Iterable[dict[str, Any]], *, now: str) -> dict[str, Any]:
    """The PDB's status after one sync of the disruption controller against `pods` (its namespace's)."""
    spec, old = pdb.get("spec") or {}, pdb.get("status") or {}
    matched = [p for p in pods if selectors.match_label_selector_object(spec.get("selector"), _labels(p))]
    healthy = sum(1 for p in matched if is_ready(p) and not is_deleting(p))
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if isinstance(min_available, int) and max_unavailable is None:
        expected, desired = len(matched), min_available
    elif min_available is None and max_unavailable is None:
        expected, desired = 0, 0
    else:
        unmanaged = next((p for p in matched if not _controller_of(p)), None)
        if unmanaged is not None:
            return _sync_failed(old, f'found no controller ref for pod "{unmanaged["metadata"]["name"]}"', now=now)
        expected = max(len(matched), old.get("expectedPods", 0))
        if min_available is not None:
            desired = _scaled(min_available, expected)
        else:
            desired = max(0, expected - _scaled(max_unavailable, expected))
    allowed = max(0, healthy - desired)
    generation = (pdb.get("metadata") or {}).get("generation", 1)
    condition = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                 "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                 "observedGeneration": generation}
    # disruptedPods stays empty: the pods the eviction handler approved are deleted at once in the fake.
    return {"observedGeneration": generation, "disruptionsAllowed": allowed, "currentHealthy": healthy,
            "desiredHealthy": desired, "expectedPods": expected, "conditions": [_dated(condition, old, now)]}


def _sync_failed(old: dict[str, Any], message: str, *, now: str) -> dict[str, Any]:
    """The controller's failSafe: no disruptions, a SyncFailed condition, the rest left as it was."""
    condition = {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": message,
                 "observedGeneration": old.get("observedGeneration", 0)}
    return {**old, "disruptionsAllowed": 0, "conditions": [_dated(condition, old, now)]}


def _dated(condition: dict[str, Any], old: dict[str, Any], now: str) -> dict[str, Any]:
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == condition["type"]), None)
    unchanged = previous is not None and previous.get("status") == condition["status"]
    return {**condition, "lastTransitionTime": previous.get("lastTransitionTime") if previous and unchanged
            else now}


def _scaled(value: int | str, total: int) -> int:
    """An IntOrString: an int as is, a percent of `total` rounded up (GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _controller_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    references = (pod.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in references if r.get("controller")), None)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}
