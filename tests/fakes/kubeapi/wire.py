"""How objects cross the wire: decoding rules, time formats, and API views of one stored object.

- Decoding: the Go decoder rejects a body whose metadata has the wrong JSON types (labels that are not
  strings, ...) and times it cannot parse, with 400 BadRequest; a body of another kind or apiVersion is 400.
- Times are normalised as the server re-encodes them: `metav1.Time` to whole seconds, `metav1.MicroTime`
  (lease renew/acquire times, event times) to microseconds, both in UTC with a `Z`.
- Views: `events.k8s.io/v1` Events are the core/v1 Events of the same storage, with renamed fields
  (`regarding` is `involvedObject`, `note` is `message`, ...), so an event written through one API is read
  through the other, as on a real server.
- Lists: built-in kinds' list items carry no kind/apiVersion; custom resources' items keep them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from . import errors
from .resources import ResourceType

# Dotted paths (list items transparent) of the times the server re-encodes, and their precision.
_TIME_FIELDS = {
    "metadata.creationTimestamp": "s", "metadata.deletionTimestamp": "s",
    "status.conditions.lastTransitionTime": "s", "status.conditions.lastProbeTime": "s",
    "status.conditions.lastHeartbeatTime": "s", "status.startTime": "s",
    "spec.acquireTime": "us", "spec.renewTime": "us",
    "eventTime": "us", "firstTimestamp": "s", "lastTimestamp": "s", "series.lastObservedTime": "us",
    "deprecatedFirstTimestamp": "s", "deprecatedLastTimestamp": "s",
}

# core/v1 Event field -> events.k8s.io/v1 Event field (fields not listed keep their names).
_EVENT_V1_NAMES = {"involvedObject": "regarding", "message": "note", "source": "deprecatedSource",
                   "firstTimestamp": "deprecatedFirstTimestamp", "lastTimestamp": "deprecatedLastTimestamp",
                   "count": "deprecatedCount", "reportingComponent": "reportingController"}
_EVENT_CORE_NAMES = {v: k for k, v in _EVENT_V1_NAMES.items()}


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def decode_object(resource: ResourceType, body: Any) -> dict[str, Any]:
    """Check a request body is an object of this resource, with the JSON types the Go structs demand."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"json: cannot unmarshal {_json_type(body)} into Go value of type "
                                 f"{resource.kind}")
    for key, wanted in (("apiVersion", resource.api_version), ("kind", resource.kind)):
        if body.get(key) not in (None, "", wanted):
            raise errors.bad_request(f"the {key} in the data ({body[key]}) does not match the expected "
                                     f"{key} ({wanted})")
    metadata = body.get("metadata")
    if metadata is None:
        body["metadata"] = {}
    elif not isinstance(metadata, dict):
        raise _type_error("metadata", metadata, "v1.ObjectMeta")
    for key in ("name", "namespace", "generateName", "uid", "resourceVersion"):
        if key in body["metadata"] and not isinstance(body["metadata"][key], str | None):
            raise _type_error(f"metadata.{key}", body["metadata"][key], "string")
    for key in ("labels", "annotations"):
        mapping = body["metadata"].get(key)
        if mapping is not None and (not isinstance(mapping, dict)
                                    or not all(isinstance(v, str) for v in mapping.values())):
            raise _type_error(f"metadata.{key}", mapping, "map[string]string")
    normalise_times(body)
    return body


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(value), "number")


def _type_error(field: str, value: Any, go_type: str) -> errors.ApiError:
    return errors.bad_request(f"json: cannot unmarshal {_json_type(value)} into Go struct field {field} "
                              f"of type {go_type}")


def normalise_times(obj: dict[str, Any]) -> None:
    for path, precision in _TIME_FIELDS.items():
        _normalise_at(obj, path.split("."), precision, path)


def _normalise_at(node: Any, parts: list[str], precision: str, path: str) -> None:
    if isinstance(node, list):
        for item in node:
            _normalise_at(item, parts, precision, path)
        return
    if not isinstance(node, dict) or parts[0] not in node:
        return
    if len(parts) > 1:
        _normalise_at(node[parts[0]], parts[1:], precision, path)
    elif node[parts[0]] is not None:
        node[parts[0]] = format_time(_parse_time(node[parts[0]], path), precision)


def _parse_time(value: Any, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f'parsing time {json.dumps(value)} as "2006-01-02T15:04:05Z07:00": cannot '
                                 f"parse {path}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime, precision: str = "s") -> str:
    moment = moment.astimezone(UTC)
    if precision == "us":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_view(resource: ResourceType, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored object as this resource's API serves it (kind and apiVersion set)."""
    served = dict(stored)
    if resource.group == "events.k8s.io":
        served = {_EVENT_V1_NAMES.get(k, k): v for k, v in stored.items()}
    served["apiVersion"], served["kind"] = resource.api_version, resource.kind
    return served


def from_view(resource: ResourceType, served: dict[str, Any]) -> dict[str, Any]:
    """An object as this resource's API received it, in the storage's form."""
    stored = dict(served)
    if resource.group == "events.k8s.io":
        stored = {_EVENT_CORE_NAMES.get(k, k): v for k, v in served.items()}
        stored["apiVersion"], stored["kind"] = "v1", "Event"
    else:
        stored["apiVersion"], stored["kind"] = resource.api_version, resource.kind
    return stored


def list_item(resource: ResourceType, served: dict[str, Any]) -> dict[str, Any]:
    if resource.custom:
        return served
    return {k: v for k, v in served.items() if k not in ("kind", "apiVersion")}
