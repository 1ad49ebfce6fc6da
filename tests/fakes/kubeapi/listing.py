"""List semantics: which snapshot a list reads, which items it keeps, and how it pages.

resourceVersion rules (as documented for the API server):
- unset: the most recent state (a consistent read); `"0"`: any state, served as the most recent.
- `N` with `resourceVersionMatch=NotOlderThan`, or without a match and without `limit`: the most recent state,
  or 504 "Too large resource version" when `N` is in the future.
- `N` with `resourceVersionMatch=Exact`, or with `limit` and no match: the state exactly as of `N`, rebuilt from
  history; 410 Gone (reason Expired) once `N` is compacted away.
- `limit`/`continue`: pages in etcd key order (namespace, name); every page reads the first page's snapshot,
  so a continue token expires (410) when that snapshot is compacted. `remainingItemCount` is given only when
  no selector filters the list, as upstream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors, selectors, wire
from .resources import ResourceType
from .store import HistoryCompacted, Store

Matcher = Callable[[Mapping[str, Any]], bool]


def object_matcher(resource: ResourceType, query: Mapping[str, str]) -> Matcher:
    """The labelSelector and fieldSelector of a request, as one predicate over served objects."""
    labels = selectors.parse_label_selector(query.get("labelSelector", ""))
    fields = selectors.parse_field_selector(query.get("fieldSelector", ""), resource.field_labels)
    return lambda obj: labels((obj.get("metadata") or {}).get("labels") or {}) and fields(obj)


def flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter as apimachinery decodes it: present and not "0"/"false" (any case) is true."""
    return name in query and query[name].lower() not in ("0", "false")


def parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f'Invalid value: "{text}": resourceVersion is not a valid number') from None
    if value < 0:
        raise errors.bad_request(f'Invalid value: "{text}": resourceVersion is not a valid number')
    return value


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str
    remaining: int | None


def list_page(store: Store, resource: ResourceType, namespace: str | None, query: Mapping[str, str]) -> Page:
    matches = object_matcher(resource, query)
    limit = _limit(query)
    start_after: tuple[str, str] = ("", "")
    if query.get("continue"):
        snapshot_rv, start_after = _decode_continue(query["continue"])
        rv_text = query.get("resourceVersion", "")
        if rv_text not in ("", "0"):
            raise errors.bad_request("specifying resource version is not allowed when using continue")
    else:
        snapshot_rv = _snapshot_rv(store, query, limit)
    with store.atomic():
        try:
            if snapshot_rv is None or snapshot_rv == store.resource_version:
                snapshot_rv = store.resource_version
                stored = store.items(resource.storage_key, namespace)
            else:
                stored = store.items_at(resource.storage_key, namespace, snapshot_rv)
        except HistoryCompacted:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list result. You can start "
                "a new list without the continue parameter." if query.get("continue")
                else "The resourceVersion for the provided list is too old.") from None
    keyed = [(_key(obj), wire.to_view(resource, obj)) for obj in stored]
    selected = [(key, obj) for key, obj in keyed if key > start_after and matches(obj)]
    if limit and len(selected) > limit:
        page = selected[:limit]
        filtered = "labelSelector" in query or "fieldSelector" in query
        return Page([obj for _, obj in page], snapshot_rv, _encode_continue(snapshot_rv, page[-1][0]),
                    None if filtered else len(selected) - limit)
    return Page([obj for _, obj in selected], snapshot_rv, "", None)


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "")
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        raise errors.bad_request(f'Invalid value: "{text}": limit must be an integer') from None


def _snapshot_rv(store: Store, query: Mapping[str, str], limit: int) -> int | None:
    """The rv to read as of, or None for the most recent state."""
    rv_text, match = query.get("resourceVersion", ""), query.get("resourceVersionMatch", "")
    if match and not rv_text:
        raise errors.bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
    if match not in ("", "Exact", "NotOlderThan"):
        raise errors.bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
    if rv_text in ("", "0"):
        if match == "Exact" and rv_text == "0":
            raise errors.bad_request('resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        return None
    rv = parse_rv(rv_text)
    if rv > store.resource_version:
        raise too_large(rv, store.resource_version)
    exact = match == "Exact" or (not match and limit > 0)
    return rv if exact else None


def too_large(requested: int, current: int) -> errors.ApiError:
    error = errors.timeout(f"Too large resource version: {requested}, current: {current}")
    error.details = {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1}
    return error


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    """The etcd key order the store sorts by: (namespace, name)."""
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace", ""), metadata.get("name", "")


def _encode_continue(rv: int, last_key: tuple[str, str]) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": list(last_key)}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = decoded["start"]
        return int(decoded["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request(f"continue key is not valid: {token!r}") from None
