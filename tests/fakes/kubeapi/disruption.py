"""PodDisruptionBudget arithmetic: what the disruption controller would write into a PDB's status. Pure.

    expectedPods      = pods the selector matches (simplified: upstream asks the pods' controllers for their
                        scale; without controllers, the matched pods are the expectation)
    currentHealthy    = matched pods that are Ready and not being deleted
    desiredHealthy    = minAvailable (an int, or a percent of expectedPods rounded up), or
                        expectedPods - maxUnavailable (an int, or a percent rounded up), at least 0
    disruptionsAllowed = max(0, currentHealthy - desiredHealthy)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import selectors


@dataclass(frozen=True)
class Budget:
    expected: int
    current_healthy: int
    desired_healthy: int

    @property
    def disruptions_allowed(self) -> int:
        return max(0, self.current_healthy - self.desired_healthy)


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
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return selectors.match_label_selector_object(selector, labels)


def budget(pdb: dict[str, Any], pods: Iterable[dict[str, Any]]) -> Budget:
    spec = pdb.get("spec") or {}
    selector = spec.get("selector")
    matched = [p for p in pods if selectors.match_label_selector_object(
        selector, (p.get("metadata") or {}).get("labels") or {})]
    expected = len(matched)
    healthy = sum(1 for p in matched if is_ready(p) and not is_deleting(p))
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        desired = 0
    return Budget(expected=expected, current_healthy=healthy, desired_healthy=desired)


def _scaled(value: int | str, total: int) -> int:
    """An IntOrString: an int as is, a percent of `total` rounded up (GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def status_for(pdb: dict[str, Any], found: Budget, *, now: str) -> dict[str, Any]:
    """The PDB status after the controller's sync. disruptedPods is empty: evicted pods are already gone."""
    generation = (pdb.get("metadata") or {}).get("generation", 1)
    old = pdb.get("status") or {}
    allowed = found.disruptions_allowed
    condition = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                 "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                 "observedGeneration": generation}
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    keep_time = previous is not None and previous.get("status") == condition["status"]
    condition["lastTransitionTime"] = previous.get("lastTransitionTime") if keep_time and previous else now
    return {"observedGeneration": generation, "disruptionsAllowed": allowed,
            "currentHealthy": found.current_healthy, "desiredHealthy": found.desired_healthy,
            "expectedPods": found.expected, "conditions": [condition]}
