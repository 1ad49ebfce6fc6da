"""Per-resource create/update rules: the fake's version of the registry strategies and admission defaults.

What it keeps, per resource (see `ResourceType` for the flags):
- create: status is reset where status is a subresource (nodes keep theirs, as upstream), metadata.generation
  starts at 1, pods get the defaults the server and its default admission plugins add (schedulerName,
  restartPolicy, requests copied from limits, the not-ready/unreachable tolerations, phase Pending and the QoS
  class), namespaces get phase Active, their finalizer and the `kubernetes.io/metadata.name` label.
- update of the main resource: status changes are ignored (status subresource), metadata.generation is
  bumped when anything outside metadata and status changes, a pod's spec is immutable but for a few fields.
- update through `/status`: only status changes are kept (pods and nodes also keep label/annotation changes,
  as their status strategies only reset spec).
- custom resources are pruned to their structural schema and type-checked, as the CRD would.

Simplified: PriorityClasses are not served (priority 0, or the two system classes), no LimitRanges, no
quota admission, no managedFields.
"""

from __future__ import annotations

import copy
from typing import Any

from . import validation
from .errors import FieldError
from .resources import ResourceType

_POD_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30, "securityContext": {}, "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
}
_CONTAINER_DEFAULTS = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
_SYSTEM_PRIORITIES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
# Added by the DefaultTolerationSeconds admission plugin unless the pod already tolerates the taint.
_DEFAULT_TOLERATIONS = [
    {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    for taint in ("not-ready", "unreachable")]

# Structural schemas of the custom resources: field -> JSON type ("object" fields keep any content).
_CUSTOM_SCHEMAS: dict[str, dict[str, dict[str, str]]] = {
    "podgroups.scheduling.x-k8s.io": {
        "spec": {"minMember": "integer", "minResources": "object", "scheduleTimeoutSeconds": "integer"},
        "status": {"phase": "string", "occupiedBy": "string", "scheduled": "integer", "running": "integer",
                   "succeeded": "integer", "failed": "integer", "scheduleStartTime": "string"},
    },
}
_JSON_TYPES = {"integer": int, "string": str, "object": dict}


def prepare_create(resource: ResourceType, obj: dict[str, Any]) -> None:
    if "status" in resource.subresources and resource.plural != "nodes":
        obj.pop("status", None)
    if resource.has_generation:
        obj["metadata"]["generation"] = 1
    if resource.custom:
        _prune(resource, obj)
    elif resource.plural == "pods":
        _default_pod(obj)
    elif resource.plural == "namespaces":
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif resource.plural == "poddisruptionbudgets":
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def _default_pod(pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    for key, value in _POD_SPEC_DEFAULTS.items():
        spec.setdefault(key, copy.deepcopy(value))
    spec.setdefault("priority", _SYSTEM_PRIORITIES.get(spec.get("priorityClassName", ""), 0))
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for key, value in _CONTAINER_DEFAULTS.items():
            container.setdefault(key, value)
        image = container.get("image", "")
        untagged_or_latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if untagged_or_latest and "@" not in image
                             else "IfNotPresent")
        resources = container.setdefault("resources", {})
        for name, limit in (resources.get("limits") or {}).items():
            resources.setdefault("requests", {}).setdefault(name, limit)
    tolerations = spec.setdefault("tolerations", [])
    for default in _DEFAULT_TOLERATIONS:
        if not any(t.get("key") in (default["key"], None, "") and t.get("effect") in (None, "", "NoExecute")
                   for t in tolerations):
            tolerations.append(dict(default))
    pod["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def _qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed if every container has equal cpu+memory requests and limits, BestEffort if none has any."""
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    resources = [c.get("resources") or {} for c in containers]
    compute = ("cpu", "memory")
    if not any(name in (r.get(section) or {}) for r in resources for section in ("requests", "limits")
               for name in compute):
        return "BestEffort"
    guaranteed = all(
        all(name in (r.get("limits") or {}) for name in compute)
        and all(validation.parse_quantity((r.get("requests") or {}).get(name, r["limits"][name]))
                == validation.parse_quantity(r["limits"][name]) for name in compute)
        for r in resources)
    return "Guaranteed" if guaranteed else "Burstable"


def create_errors(resource: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    found = validation.metadata_errors(resource, obj)
    if resource.plural == "pods":
        found += validation.pod_resource_errors(obj)
        if not (obj.get("spec") or {}).get("containers"):
            found.append(FieldError("spec.containers", "Required", None))
    if resource.custom:
        found += _schema_errors(resource, obj)
    return found


def prepare_update(resource: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Main-resource update: carry system metadata over, ignore status, bump generation on spec changes."""
    _keep_system_metadata(new, old)
    if "status" in resource.subresources:
        _set_or_drop(new, "status", old.get("status"))
    if resource.custom:
        _prune(resource, new)
    _bump_generation(resource, new, old)


def prepare_status_update(resource: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Update through `/status`: the stored object with only the new status (and, for some, new metadata)."""
    result = copy.deepcopy(old)
    _set_or_drop(result, "status", new.get("status"))
    if resource.status_keeps_metadata:
        for key in ("labels", "annotations"):
            _set_or_drop(result["metadata"], key, (new.get("metadata") or {}).get(key))
    if resource.custom:
        _prune(resource, result)
    return result


def update_errors(resource: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    found = validation.metadata_errors(resource, new)
    if resource.plural == "pods":
        found += validation.pod_update_errors(new, old)
    if resource.custom:
        found += _schema_errors(resource, new)
    return found


_SYSTEM_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                    "name", "namespace")


def _keep_system_metadata(new: dict[str, Any], old: dict[str, Any]) -> None:
    for key in _SYSTEM_METADATA:
        _set_or_drop(new["metadata"], key, old["metadata"].get(key))


def _bump_generation(resource: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
    if not resource.has_generation:
        return
    def content(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}
    if content(new) != content(old):
        new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1


def _set_or_drop(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = copy.deepcopy(value)


def _prune(resource: ResourceType, obj: dict[str, Any]) -> None:
    """Drop fields the structural schema does not declare, as the server does for custom resources."""
    schema = _CUSTOM_SCHEMAS[str(resource.group_resource)]
    for key in [k for k in obj if k not in {"apiVersion", "kind", "metadata", *schema}]:
        del obj[key]
    for section, fields in schema.items():
        if isinstance(obj.get(section), dict):
            for key in [k for k in obj[section] if k not in fields]:
                del obj[section][key]


def _schema_errors(resource: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    found = []
    for section, fields in _CUSTOM_SCHEMAS[str(resource.group_resource)].items():
        for key, json_type in fields.items():
            value = (obj.get(section) or {}).get(key)
            if value is not None and (not isinstance(value, _JSON_TYPES[json_type]) or isinstance(value, bool)):
                found.append(FieldError(f"{section}.{key}", "Invalid", value,
                                        f"{section}.{key} in body must be of type {json_type}: "
                                        f'"{type(value).__name__}"'))
    return found
