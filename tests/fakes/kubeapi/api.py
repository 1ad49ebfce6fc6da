"""The verbs of the API server, without I/O: get, list, create, update, patch, delete, deletecollection.

Each verb takes the resolved `Target`, the decoded request and its query, and returns a `Reply` (HTTP code and
JSON body) or raises `ApiError`. Every read-modify-write holds the store for its whole duration, so two
clients racing on one object see exactly one winner and one 409, as with etcd's compare-and-swap.

Order of checks, as upstream: decode (400) -> validation (422) -> admission (namespace exists, 404) ->
storage (409 AlreadyExists / Conflict). Simplified: pods are deleted at once (no kubelet to wait for), as
are namespaces (their content with them); deletion propagation policies are accepted and ignored;
`dryRun=All` is honoured by not committing.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import errors, listing, patching, strategy, validation, wire
from .errors import FieldError, GoLiteral
from .resources import RESOURCES, ResourceType, Target, resource_named
from .store import Key, Store

_GENERATED_CHARS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class ApiServer:
    def __init__(self, store: Store, *, clock: Callable[[], datetime], rng: random.Random) -> None:
        self.store = store
        self._clock = clock
        self._rng = rng

    def now(self, precision: str = "s") -> str:
        return wire.format_time(self._clock(), precision)

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, target: Target, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        stored = self.store.get(self.key(resource, target.namespace, target.name))
        if stored is None:
            raise errors.not_found(resource.group_resource, target.name or "")
        return Reply(200, wire.to_view(resource, stored))

    def list(self, target: Target, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        page = listing.list_page(self.store, resource, target.namespace, query)
        metadata: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining is not None:
            metadata["remainingItemCount"] = page.remaining
        return Reply(200, {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": metadata,
                           "items": [wire.list_item(resource, item) for item in page.items]})

    # -- writes -------------------------------------------------------------------------------------------

    def create(self, target: Target, body: Any, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        if target.name is not None or (resource.namespaced and target.namespace is None):
            raise errors.method_not_allowed()
        obj = wire.from_view(resource, wire.decode_object(resource, body))
        metadata = obj["metadata"]
        self._place(resource, metadata, target.namespace)
        if metadata.get("resourceVersion"):
            raise errors.unknown(500, "resourceVersion should not be set on objects to be created")
        if not metadata.get("name"):
            generate_name = metadata.get("generateName") or ""
            if not generate_name:
                raise errors.invalid(resource.kind, resource.group, "",
                                     [FieldError("metadata.name", "Required", None,
                                                 "name or generateName is required")])
            problems = validation.generate_name_errors(resource, generate_name)
            if problems:
                raise errors.invalid(resource.kind, resource.group, generate_name, problems)
            metadata["name"] = generate_name + "".join(self._rng.choice(_GENERATED_CHARS) for _ in range(5))
        with self.store.atomic():
            return self.create_stored(resource, obj, dry_run=_dry_run(query))

    def create_stored(self, resource: ResourceType, obj: dict[str, Any], *, dry_run: bool = False) -> Reply:
        """Validate, admit and store a decoded object whose name and namespace are settled."""
        metadata = obj["metadata"]
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            metadata.pop(key, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = self.now()
        strategy.prepare_create(resource, obj)
        problems = strategy.create_errors(resource, obj)
        if problems:
            raise errors.invalid(resource.kind, resource.group, metadata["name"], problems)
        with self.store.atomic():
            self._require_namespace(resource, metadata.get("namespace"))
            key = self.key(resource, metadata.get("namespace"), metadata["name"])
            if self.store.get(key) is not None:
                raise errors.already_exists(resource.group_resource, metadata["name"])
            if dry_run:
                return Reply(201, wire.to_view(resource, obj))
            return Reply(201, wire.to_view(resource, self.store.write(key, obj).obj))

    def update(self, target: Target, body: Any, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        new = wire.from_view(resource, wire.decode_object(resource, body))
        self._check_identity(target, new)
        with self.store.atomic():
            old = self.store.get(self.key(resource, target.namespace, target.name))
            if old is None:
                if resource.create_on_update and target.subresource is None:
                    new["metadata"].pop("resourceVersion", None)
                    return self.create_stored(resource, new, dry_run=_dry_run(query))
                raise errors.not_found(resource.group_resource, target.name or "")
            return self.commit_update(resource, new, old, status=target.subresource == "status",
                                      dry_run=_dry_run(query))

    def patch(self, target: Target, body: Any, content_type: str, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        with self.store.atomic():
            old = self.store.get(self.key(resource, target.namespace, target.name))
            if old is None:
                raise errors.not_found(resource.group_resource, target.name or "")
            patched = patching.apply_patch(content_type, wire.to_view(resource, old), body, custom=resource.custom)
            new = wire.from_view(resource, wire.decode_object(resource, patched))
            self._check_identity(target, new)
            return self.commit_update(resource, new, old, status=target.subresource == "status",
                                      dry_run=_dry_run(query))

    def commit_update(self, resource: ResourceType, new: dict[str, Any], old: dict[str, Any], *,
                      status: bool = False, dry_run: bool = False) -> Reply:
        """Optimistic concurrency, the strategy, validation, then one write (or none if nothing changed)."""
        name, old_meta = old["metadata"]["name"], old["metadata"]
        uid = new["metadata"].get("uid")
        if uid and uid != old_meta["uid"]:
            raise errors.conflict(resource.group_resource, name,
                                  f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                                  f"{old_meta['uid']}")
        rv = new["metadata"].get("resourceVersion")
        if not rv and resource.custom:
            raise errors.invalid(resource.kind, resource.group, name,
                                 [FieldError("metadata.resourceVersion", "Invalid", GoLiteral("0x0"),
                                             "must be specified for an update")])
        if rv and rv != old_meta["resourceVersion"]:
            raise errors.conflict(resource.group_resource, name, errors.STALE_OBJECT)
        if status:
            candidate = strategy.prepare_status_update(resource, new, old)
        else:
            candidate = new
            strategy.prepare_update(resource, candidate, old)
        problems = strategy.update_errors(resource, candidate, old)
        if problems:
            raise errors.invalid(resource.kind, resource.group, name, problems)
        candidate["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        key = self.key(resource, old_meta.get("namespace"), name)
        if candidate == old or dry_run:
            return Reply(200, wire.to_view(resource, candidate))  # a no-op update writes nothing, as etcd
        if candidate["metadata"].get("deletionTimestamp") and not candidate["metadata"].get("finalizers"):
            self.store.write(key, candidate)
            return Reply(200, wire.to_view(resource, self.store.remove(key).obj))
        return Reply(200, wire.to_view(resource, self.store.write(key, candidate).obj))

    def delete(self, target: Target, body: Any, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        options = body if isinstance(body, dict) else {}
        preconditions = options.get("preconditions") or {}
        with self.store.atomic():
            key = self.key(resource, target.namespace, target.name)
            old = self.store.get(key)
            if old is None:
                raise errors.not_found(resource.group_resource, target.name or "")
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted, actual = preconditions.get(field), old["metadata"].get(field)
                if wanted and wanted != actual:
                    raise errors.conflict(resource.group_resource, target.name or "",
                                          f"Precondition failed: {label} in precondition: {wanted}, {label} in "
                                          f"object meta: {actual}")
            if _dry_run(query) or options.get("dryRun"):
                return Reply(200, wire.to_view(resource, old))
            return self.delete_stored(resource, key, old)

    def delete_stored(self, resource: ResourceType, key: Key, old: dict[str, Any]) -> Reply:
        """Delete now, or mark for deletion while finalizers remain (caller holds the store)."""
        if old["metadata"].get("finalizers"):
            if not old["metadata"].get("deletionTimestamp"):
                marked = copy.deepcopy(old)
                marked["metadata"]["deletionTimestamp"] = self.now()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                old = self.store.write(key, marked).obj
            return Reply(200, wire.to_view(resource, old))
        if resource.plural == "namespaces":
            self._delete_namespace_content(key[2])
        self.store.remove(key)
        if resource.returns_deleted_object:
            return Reply(200, wire.to_view(resource, old))
        details = resource.group_resource.details(old["metadata"]["name"]) | {"uid": old["metadata"]["uid"]}
        return Reply(200, errors.success_status(details=details))

    def delete_collection(self, target: Target, body: Any, query: Mapping[str, str]) -> Reply:
        resource = target.resource
        matches = listing.object_matcher(resource, query)
        deleted = []
        with self.store.atomic():
            for stored in self.store.items(resource.storage_key, target.namespace):
                if matches(wire.to_view(resource, stored)):
                    key = self.key(resource, stored["metadata"].get("namespace"), stored["metadata"]["name"])
                    self.delete_stored(resource, key, stored)
                    deleted.append(wire.list_item(resource, wire.to_view(resource, stored)))
            rv = self.store.resource_version
        return Reply(200, {"kind": resource.list_kind, "apiVersion": resource.api_version,
                           "metadata": {"resourceVersion": str(rv)}, "items": deleted})

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def key(resource: ResourceType, namespace: str | None, name: str | None) -> Key:
        return resource.storage_key, (namespace or "") if resource.namespaced else "", name or ""

    def _require_namespace(self, resource: ResourceType, namespace: str | None) -> None:
        """The NamespaceLifecycle admission plugin: no object in a namespace that does not exist."""
        if resource.namespaced and self.store.get(("namespaces", "", namespace or "")) is None:
            raise errors.not_found(resource_named("namespaces").group_resource, namespace or "")

    @staticmethod
    def _place(resource: ResourceType, metadata: dict[str, Any], namespace: str | None) -> None:
        if not resource.namespaced:
            metadata.pop("namespace", None)
            return
        if metadata.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                     "on the request")
        metadata["namespace"] = namespace

    def _check_identity(self, target: Target, new: dict[str, Any]) -> None:
        name = new["metadata"].get("name")
        if name != target.name:
            raise errors.bad_request(f"the name of the object ({name}) does not match the name on the URL "
                                     f"({target.name})")
        self._place(target.resource, new["metadata"], target.namespace)

    def _delete_namespace_content(self, namespace: str) -> None:
        for storage in sorted({r.storage_key for r in RESOURCES if r.namespaced}):
            for stored in self.store.items(storage, namespace):
                self.store.remove((storage, namespace, stored["metadata"]["name"]))


def _dry_run(query: Mapping[str, str]) -> bool:
    return query.get("dryRun", "") == "All"
