"""The three PATCH bodies the API server accepts, applied to a served (wire-form) object.

- JSON merge patch (RFC 7386): maps merge recursively, `null` deletes a key, anything else replaces.
- Strategic merge patch: a merge patch whose lists with a patch merge key (containers by name, conditions by
  type, taints by key, ...) merge item by item, with the `$patch: delete|replace` directives and
  `$deleteFromPrimitiveList/<field>`; `metadata.finalizers` merges as a set. Simplified: the merge keys are
  a short table of the fields our objects use, `$retainKeys` and `$setElementOrder` are ignored. Custom
  resources refuse it with 415, as the real server does.
- JSON patch (RFC 6902): add, remove, replace, move, copy, test. A malformed patch is 400; an operation that
  does not apply (a failed `test`, a missing path) is 422, as the server answers `jsonpatch` errors.

The caller checks the patched object's `metadata.resourceVersion` against the stored one (409 if stale).
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# Lists merged item by item under a strategic merge patch: dotted path (list items transparent) -> merge key.
_MERGE_KEYS = {
    "metadata.ownerReferences": "uid",
    "spec.containers": "name", "spec.initContainers": "name", "spec.ephemeralContainers": "name",
    "spec.containers.env": "name", "spec.initContainers.env": "name",
    "spec.containers.ports": "containerPort", "spec.containers.volumeMounts": "mountPath",
    "spec.volumes": "name", "spec.imagePullSecrets": "name", "spec.schedulingGates": "name",
    "spec.taints": "key", "status.conditions": "type", "status.addresses": "type", "status.podIPs": "ip",
}
# Lists of scalars merged as sets under a strategic merge patch.
_MERGE_SETS = {"metadata.finalizers"}


def apply_patch(content_type: str, target: dict[str, Any], patch: Any, *, custom: bool) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE_PATCH:
        return merge_patch(target, _object_patch(patch))
    if media == STRATEGIC_MERGE_PATCH and not custom:
        return strategic_merge_patch(target, _object_patch(patch))
    if media == JSON_PATCH:
        return json_patch(target, patch)
    raise errors.unsupported_media_type(media)


def _object_patch(patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return patch


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, path: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
        elif key.startswith("$"):
            continue  # $retainKeys, $setElementOrder/...: ordering and pruning hints we do not model
        elif value is None:
            result.pop(key, None)
        else:
            field_path = f"{path}.{key}" if path else key
            result[key] = _strategic_value(result.get(key), value, field_path)
    return result


def _strategic_value(current: Any, value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return strategic_merge_patch(current, value, path)
    if isinstance(value, list) and path in _MERGE_SETS:
        merged = list(current or [])
        return merged + [item for item in value if item not in merged]
    if isinstance(value, list) and path in _MERGE_KEYS:
        return _merge_keyed_list(current or [], value, _MERGE_KEYS[path], path)
    return copy.deepcopy(value)


def _merge_keyed_list(current: list[Any], patch: list[Any], merge_key: str, path: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise errors.bad_request(f"map: {item} does not contain declared merge key: {merge_key}")
        index = next((i for i, old in enumerate(result) if old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item, path))
        else:
            result[index] = strategic_merge_patch(result[index], item, path)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list) or not all(isinstance(op, dict) and "op" in op for op in operations):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document: Any = copy.deepcopy(target)
    for operation in operations:
        document = _apply_operation(document, operation)
    return document


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    kind, path = operation["op"], operation.get("path")
    if not isinstance(path, str) or kind not in {"add", "remove", "replace", "move", "copy", "test"}:
        raise errors.bad_request(f"Unexpected kind: {kind}")
    if kind in {"add", "replace", "test"} and "value" not in operation:
        raise errors.bad_request(f"missing value for {kind} operation")
    if kind == "test":
        if _get(document, path, kind) != operation["value"]:
            raise _does_not_apply(f"testing value {path} failed: test failed")
        return document
    if kind in {"move", "copy"}:
        source = operation.get("from")
        if not isinstance(source, str):
            raise errors.bad_request(f"missing from for {kind} operation")
        value = copy.deepcopy(_get(document, source, kind))
        if kind == "move":
            document = _remove(document, source)
        return _add(document, path, value)
    if kind == "remove":
        return _remove(document, path)
    if kind == "replace":
        _get(document, path, kind)  # must exist
        document = _remove(document, path)
    return _add(document, path, copy.deepcopy(operation["value"]))


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"JSON pointer must be empty or start with a \"/\": {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _get(document: Any, path: str, kind: str) -> Any:
    current = document
    for token in _tokens(path):
        current = _child(current, token, path, kind)
    return current


def _child(container: Any, token: str, path: str, kind: str) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return container[int(token)]
    raise _does_not_apply(f"{kind} operation does not apply: doc is missing path: \"{path}\": missing value")


def _parent(document: Any, path: str, kind: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise _does_not_apply(f"{kind} operation does not apply: cannot {kind} the whole document")
    parent = document
    for token in tokens[:-1]:
        parent = _child(parent, token, path, kind)
    return parent, tokens[-1]


def _add(document: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent, token = _parent(document, path, "add")
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list) and (token == "-" or (token.isdigit() and int(token) <= len(parent))):
        parent.insert(len(parent) if token == "-" else int(token), value)
    else:
        raise _does_not_apply(f"add operation does not apply: doc is missing path: \"{path}\": missing value")
    return document


def _remove(document: Any, path: str) -> Any:
    parent, token = _parent(document, path, "remove")
    _child(parent, token, path, "remove")
    if isinstance(parent, dict):
        del parent[token]
    else:
        del parent[int(token)]
    return document


def _does_not_apply(message: str) -> errors.ApiError:
    return errors.ApiError(422, "Invalid", message)
