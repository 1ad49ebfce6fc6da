"""The resources the fake serves, as one table, and how a URL path names one of them.

Each `ResourceType` is data: group, version, plural, kind, scope, subresources and the few per-resource
behaviours of the real registry that callers can notice (does a delete answer the object or a Status, does
an update need a resourceVersion, which field labels may be selected on). Nothing registers itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import errors
from .errors import GroupResource

_COMMON_NAMESPACED = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
_COMMON_CLUSTER = {"metadata.name": "metadata.name"}


@dataclass(frozen=True)
class ResourceType:
    """One served resource. `storage` names the store its objects live in (two API views may share one)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    storage: str = ""
    # metadata.generation is set on create and bumped when anything outside metadata and status changes.
    has_generation: bool = False
    # Custom resources: items keep kind/apiVersion in lists, no strategic merge patch, PUT needs a resourceVersion.
    custom: bool = False
    # The registry's ReturnDeletedObject: a delete answers the object rather than a Status.
    returns_deleted_object: bool = False
    # Whether an update through the status subresource also persists label/annotation changes
    # (pods and nodes: their status strategies only reset spec).
    status_keeps_metadata: bool = False
    # PUT on a missing object creates it (events only, among ours).
    create_on_update: bool = False
    # DNS-1123 "subdomain" (most names) or "label" (namespaces).
    name_rule: str = "subdomain"
    # Selectable field label -> dotted path in the served object.
    field_labels: dict[str, str] = field(default_factory=dict)
    verbs: frozenset[str] = frozenset({"get", "list", "watch", "create", "update", "patch", "delete",
                                       "deletecollection"})
    short_names: tuple[str, ...] = ()  # kubectl's, accepted by the fake's test controls

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> GroupResource:
        return GroupResource(self.group, self.plural)

    @property
    def storage_key(self) -> str:
        return self.storage or str(self.group_resource)


def _fields(namespaced: bool, **extra: str) -> dict[str, str]:
    base = dict(_COMMON_NAMESPACED if namespaced else _COMMON_CLUSTER)
    base.update({label.replace("__", "."): path for label, path in extra.items()})
    return base


_EVENT_FIELDS = {f"involvedObject.{f}": f"involvedObject.{f}"
                 for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
_EVENT_FIELDS |= {"reason": "reason", "reportingComponent": "reportingComponent", "source": "source.component",
                  "type": "type"}
_EVENT_V1_FIELDS = {f"regarding.{f}": f"regarding.{f}"
                    for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
_EVENT_V1_FIELDS |= {"reason": "reason", "reportingController": "reportingController", "type": "type"}

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, frozenset({"status"}), name_rule="label",
                 returns_deleted_object=True, short_names=("ns",), field_labels=_fields(False, status__phase="status.phase")),
    ResourceType("", "v1", "nodes", "Node", False, frozenset({"status"}), status_keeps_metadata=True,
                 short_names=("no",),
                 field_labels=_fields(False, spec__unschedulable="spec.unschedulable")),
    ResourceType("", "v1", "pods", "Pod", True, frozenset({"status", "binding", "eviction"}), has_generation=True,
                 returns_deleted_object=True, status_keeps_metadata=True, short_names=("po",),
                 field_labels=_fields(True, spec__nodeName="spec.nodeName", spec__restartPolicy="spec.restartPolicy",
                                      spec__schedulerName="spec.schedulerName",
                                      spec__serviceAccountName="spec.serviceAccountName",
                                      spec__hostNetwork="spec.hostNetwork", status__phase="status.phase",
                                      status__podIP="status.podIP",
                                      status__nominatedNodeName="status.nominatedNodeName")),
    ResourceType("", "v1", "bindings", "Binding", True, verbs=frozenset({"create"})),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, frozenset({"status"}),
                 field_labels=_fields(True), short_names=("quota",)),
    ResourceType("", "v1", "events", "Event", True, create_on_update=True, short_names=("ev",),
                 field_labels=_fields(True) | _EVENT_FIELDS),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, storage="events", create_on_update=True,
                 field_labels=_fields(True) | _EVENT_V1_FIELDS),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, field_labels=_fields(True), short_names=("cm",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, field_labels=_fields(True)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, frozenset({"status"}),
                 has_generation=True, field_labels=_fields(True), short_names=("pdb",)),
    ResourceType("scheduling.x-k8s.io", "v1alpha1", "podgroups", "PodGroup", True, frozenset({"status"}),
                 has_generation=True, custom=True, field_labels=_fields(True), short_names=("pg",)),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_BY_NAME: dict[str, ResourceType] = {}
for _resource in RESOURCES:  # earlier entries win: core/v1 events over events.k8s.io
    _BY_NAME.setdefault(_resource.plural, _resource)
    _BY_NAME.setdefault(_resource.kind.lower(), _resource)
    for _short in _resource.short_names:
        _BY_NAME.setdefault(_short, _resource)


def resource_named(name: str) -> ResourceType:
    """The table entry for `pods`, `Pod`, `leases`, `PodGroup`... (core/v1 for `events`)."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise KeyError(f"the fake does not serve {name!r}") from None


def resource_for_object(obj: dict) -> ResourceType:
    """The table entry for an object by its apiVersion and kind (for seeding with `put`)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in _BY_KIND:
        raise KeyError(f"the fake does not serve {key[0]} {key[1]}")
    return _BY_KIND[key]


@dataclass(frozen=True)
class Target:
    """What a request path addresses. `namespace` None on a namespaced collection means all namespaces."""

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Target:
    """Resolve `/api/v1/...` or `/apis/{group}/{version}/...`; unknown paths are the server's 404."""
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise _no_route()
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in _BY_PATH:
        resource = _BY_PATH[(group, version, rest[2])]
        if not resource.namespaced:
            raise _no_route()
        return _target(resource, rest[1], rest[3:])
    if rest and (group, version, rest[0]) in _BY_PATH:
        resource = _BY_PATH[(group, version, rest[0])]
        return _target(resource, None, rest[1:])
    raise _no_route()


def _target(resource: ResourceType, namespace: str | None, tail: list[str]) -> Target:
    if len(tail) > 2:
        raise _no_route()
    name = tail[0] if tail else None
    subresource = tail[1] if len(tail) == 2 else None
    if subresource is not None and subresource not in resource.subresources:
        raise _no_route()
    if namespace is None and resource.namespaced and name is not None:
        raise _no_route()
    return Target(resource, namespace, name, subresource)


def _no_route() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource", details={})
