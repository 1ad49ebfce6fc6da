"""`pods/binding` and `pods/eviction`, as `pkg/registry/core/pod/storage` implements them.

Binding (also the legacy `POST namespaces/{ns}/bindings`): one atomic update of the pod that sets
`spec.nodeName`, merges the Binding's `metadata.annotations` into the pod's, sets `PodScheduled=True` and clears
`status.nominatedNodeName`, under the preconditions the Binding carries (`metadata.uid`,
`metadata.resourceVersion`: 409 if they differ). 409 if the pod is assigned, being deleted or gated.
The answer is a `Status` with code 201, not a Binding: the real server does that too, so the `kubernetes`
client's `create_namespaced_pod_binding` fails to deserialise it unless called with `_preload_content=False`.

Eviction: pods that are Pending, terminal or being deleted are deleted outright; otherwise the one PDB that
covers the pod decides (more than one is a 500). The fake plays the disruption controller at that moment:
it syncs the PDB's status from the live pods (see `disruption`), then either refuses with 429 TooManyRequests
naming the budget, or decrements `disruptionsAllowed`, records the pod in `disruptedPods` and deletes the pod.
An unready pod may go while the budget is otherwise met (or with `unhealthyPodEvictionPolicy: AlwaysAllow`).
"""

from __future__ import annotations

import copy
from typing import Any

from . import disruption, errors
from .api import ApiServer, Reply
from .errors import GroupResource
from .resources import resource_named

_PODS = GroupResource("", "pods")
_BINDING = GroupResource("", "pods/binding")


def bind(api: ApiServer, namespace: str, url_name: str | None, body: Any) -> Reply:
    binding = body if isinstance(body, dict) else {}
    metadata = binding.get("metadata") or {}
    name = metadata.get("name") or ""
    if url_name is not None and name != url_name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    node = (binding.get("target") or {}).get("name")
    if not node:
        # ValidatePodBinding's errors reach the handler as a plain error: a 500 with no reason.
        raise errors.unknown(500, "target.name: Required value")
    with api.store.atomic():
        key, pod = _existing_pod(api, namespace, name, metadata)
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict(_BINDING, name, f"pod {name} is being deleted, cannot be assigned to a host")
        if (pod.get("spec") or {}).get("nodeName"):
            raise errors.conflict(_BINDING, name,
                                  f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        if (pod.get("spec") or {}).get("schedulingGates"):
            raise errors.conflict(_BINDING, name, f"pod {name} has non-empty .spec.schedulingGates")
        bound = copy.deepcopy(pod)
        bound.setdefault("spec", {})["nodeName"] = node
        bound["metadata"].setdefault("annotations", {}).update(metadata.get("annotations") or {})
        status = bound.setdefault("status", {})
        status.pop("nominatedNodeName", None)
        _set_condition(status, {"type": "PodScheduled", "status": "True", "lastProbeTime": None}, now=api.now())
        api.store.write(key, bound)
    return Reply(201, errors.success_status(code=201))


def _existing_pod(api: ApiServer, namespace: str, name: str, preconditions: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(store key, pod) of a pod that exists and meets the caller's uid/resourceVersion preconditions."""
    key = api.key(resource_named("pods"), namespace, name)
    pod = api.store.get(key)
    if pod is None:
        raise errors.not_found(_PODS, name)
    _check_preconditions(pod, preconditions)
    return key, pod


def _check_preconditions(pod: dict[str, Any], metadata: dict[str, Any]) -> None:
    name = pod["metadata"]["name"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted, actual = metadata.get(field), pod["metadata"].get(field)
        if wanted and wanted != actual:
            raise errors.conflict(_PODS, name, f"Precondition failed: {label} in precondition: {wanted}, "
                                               f"{label} in object meta: {actual}")


def _set_condition(status: dict[str, Any], condition: dict[str, Any], *, now: str) -> None:
    """UpdatePodCondition: replace the condition of that type, keeping lastTransitionTime if status is unchanged."""
    conditions = status.setdefault("conditions", [])
    previous = next((c for c in conditions if c.get("type") == condition["type"]), None)
    unchanged = previous is not None and previous.get("status") == condition["status"]
    condition["lastTransitionTime"] = previous.get("lastTransitionTime") if unchanged and previous else now
    if previous is None:
        conditions.append(condition)
    else:
        conditions[conditions.index(previous)] = condition


def evict(api: ApiServer, namespace: str, name: str, body: Any) -> Reply:
    eviction = body if isinstance(body, dict) else {}
    if (eviction.get("metadata") or {}).get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    delete_options = eviction.get("deleteOptions") or {}
    with api.store.atomic():
        key, pod = _existing_pod(api, namespace, name, delete_options.get("preconditions") or {})
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Pending", "Succeeded", "Failed") or disruption.is_deleting(pod):
            return _delete(api, key, pod)
        pdbs = [p for p in _pdbs(api, namespace) if disruption.covers(p, pod)]
        if len(pdbs) > 1:
            raise errors.unknown(500, "This pod has more than one PodDisruptionBudget, which the eviction "
                                      "subresource does not support.")
        if not pdbs:
            return _delete(api, key, pod)
        pdb = _refresh(api, pdbs[0])
        status = pdb["status"]
        may_go_unready = ((pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                          or (status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0))
        if not disruption.is_ready(pod) and may_go_unready:
            return _delete(api, key, pod)
        if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
            raise errors.too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.", retry_after=10,
                causes=[{"reason": "DisruptionBudget", "message": f"The disruption budget {pdb['metadata']['name']}"
                                                                  " is still being processed by the server."}])
        if status["disruptionsAllowed"] == 0:
            raise errors.too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.", retry_after=0,
                causes=[{"reason": "DisruptionBudget",
                         "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                    f"{status['desiredHealthy']} healthy pods and has {status['currentHealthy']} "
                                    f"currently"}])
        status["disruptionsAllowed"] -= 1
        status.setdefault("disruptedPods", {})[name] = api.now()
        _write_pdb(api, pdb)
        return _delete(api, key, pod)


def _delete(api: ApiServer, key: tuple[str, str, str], pod: dict[str, Any]) -> Reply:
    api.delete_stored(resource_named("pods"), key, pod)
    return Reply(201, errors.success_status(code=201))


def _pdbs(api: ApiServer, namespace: str) -> list[dict[str, Any]]:
    return api.store.items(resource_named("poddisruptionbudgets").storage_key, namespace)


def _refresh(api: ApiServer, pdb: dict[str, Any]) -> dict[str, Any]:
    """Sync the PDB's status from the live pods, as the disruption controller would have by now."""
    pods = api.store.items(resource_named("pods").storage_key, pdb["metadata"]["namespace"])
    refreshed = copy.deepcopy(pdb)
    refreshed["status"] = disruption.synced_status(pdb, pods, now=api.now())
    if refreshed["status"] != pdb.get("status"):
        refreshed = _write_pdb(api, refreshed)
    return refreshed


def _write_pdb(api: ApiServer, pdb: dict[str, Any]) -> dict[str, Any]:
    resource = resource_named("poddisruptionbudgets")
    key = api.key(resource, pdb["metadata"]["namespace"], pdb["metadata"]["name"])
    return api.store.write(key, pdb).obj
