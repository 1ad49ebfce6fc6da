"""The validation the API server applies that our code could trip over, with upstream's messages.

- Names: DNS-1123 subdomains (most resources) or labels (namespaces); `generateName` allowed.
- Labels and annotations: qualified-name keys, label values, the 256 KiB annotation budget.
- Pods: extended resources (any domain-qualified name outside `*kubernetes.io/`, e.g. `nvidia.com/gpu`) must be
  integers, need a limit, and a request must equal the limit; quantities must parse. On update, a pod's spec is
  immutable except for images, activeDeadlineSeconds, added tolerations, terminationGracePeriodSeconds and
  removed scheduling gates.

Everything returns a list of `FieldError`; the caller raises one 422 listing them all, as the server does.
Quantity syntax errors are the decoder's 400 and raise directly.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any

from . import errors
from .errors import FieldError
from .resources import ResourceType

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                  "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                  "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
                    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_ANNOTATIONS_BUDGET = 256 * 1024
_NOT_INTEGER = "must be an integer"


def dns_errors(value: str, field: str, rule: str) -> list[FieldError]:
    if rule == "label":
        if len(value) > 63:
            return [FieldError(field, "Invalid", value, "must be no more than 63 characters")]
        return [] if _LABEL.match(value) else [FieldError(field, "Invalid", value, _LABEL_MSG)]
    if len(value) > 253:
        return [FieldError(field, "Invalid", value, "must be no more than 253 characters")]
    return [] if _SUBDOMAIN.match(value) else [FieldError(field, "Invalid", value, _SUBDOMAIN_MSG)]


def qualified_name_errors(key: str, field: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    found: list[FieldError] = []
    if "/" in key and not prefix:
        found.append(FieldError(field, "Invalid", key, "prefix part must be non-empty"))
    elif prefix:
        found += [FieldError(field, "Invalid", key, f"prefix part {e.detail}") for e in dns_errors(prefix, field,
                                                                                               "subdomain")]
    if not name:
        found.append(FieldError(field, "Invalid", key, "name part must be non-empty"))
    elif len(name) > 63:
        found.append(FieldError(field, "Invalid", key, "name part must be no more than 63 characters"))
    elif not _NAME_PART.match(name):
        found.append(FieldError(field, "Invalid", key, _NAME_PART_MSG))
    return found


def metadata_errors(resource: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    metadata = obj.get("metadata") or {}
    found = dns_errors(metadata.get("name", ""), "metadata.name", resource.name_rule)
    for key, value in (metadata.get("labels") or {}).items():
        found += qualified_name_errors(key, "metadata.labels")
        if len(value) > 63:
            found.append(FieldError("metadata.labels", "Invalid", value, "must be no more than 63 characters"))
        elif not _LABEL_VALUE.match(value):
            found.append(FieldError("metadata.labels", "Invalid", value, _LABEL_VALUE_MSG))
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        found += qualified_name_errors(key.lower(), "metadata.annotations")
    if sum(len(k) + len(v) for k, v in annotations.items()) > _ANNOTATIONS_BUDGET:
        found.append(FieldError("metadata.annotations", "TooLong", None,
                                f"must have at most {_ANNOTATIONS_BUDGET} bytes"))
    return found


def generate_name_errors(resource: ResourceType, generate_name: str) -> list[FieldError]:
    # The server validates the prefix with a placeholder suffix, as the generated name will end.
    return [FieldError("metadata.generateName", e.type, generate_name, e.detail)
            for e in dns_errors(generate_name + "a", "metadata.generateName", resource.name_rule)]


_QUANTITY = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SCALE = {"Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
          "Pi": Fraction(2**50), "Ei": Fraction(2**60), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6),
          "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
          "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18)}


def parse_quantity(text: Any) -> Fraction:
    """A resource quantity's exact value; malformed ones are the decoder's 400, as upstream."""
    if isinstance(text, int) and not isinstance(text, bool):
        return Fraction(text)
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if not match:
        raise errors.bad_request(
            f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' "
            f"(got {json.dumps(text)})")
    sign, number, exponent, suffix = match.groups()
    value = Fraction(number) * (Fraction(10) ** int(exponent) if exponent else _SCALE.get(suffix, Fraction(1)))
    return -value if sign == "-" else value


def is_extended_resource(name: str) -> bool:
    """Upstream's IsExtendedResourceName: domain-qualified, not `*kubernetes.io/`, not a `requests.` quota name."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return not qualified_name_errors(f"requests.{name}", "")


def pod_resource_errors(pod: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    spec = pod.get("spec") or {}
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            resources = container.get("resources") or {}
            base = f"spec.{list_name}[{index}].resources"
            found += _container_resource_errors(resources.get("requests") or {}, resources.get("limits") or {}, base)
    return found


def _container_resource_errors(requests: dict[str, Any], limits: dict[str, Any], base: str) -> list[FieldError]:
    found: list[FieldError] = []
    for section, values in (("limits", limits), ("requests", requests)):
        for name, text in values.items():
            value = parse_quantity(text)
            field = f"{base}.{section}[{name}]"
            if value < 0:
                found.append(FieldError(field, "Invalid", text, "must be greater than or equal to 0"))
            if is_extended_resource(name) and value.denominator != 1:
                found.append(FieldError(field, "Invalid", text, _NOT_INTEGER))
    for name, text in requests.items():
        if not is_extended_resource(name):
            continue
        if name not in limits:
            found.append(FieldError(f"{base}.limits", "Required", None,
                                    "Limit must be set for non overcommitable resources"))
        elif parse_quantity(text) != parse_quantity(limits[name]):
            found.append(FieldError(f"{base}.requests", "Invalid", text,
                                    f"must be equal to {name} limit of {limits[name]}"))
    return found


_POD_UPDATE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
                   "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                   "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                   "was previously negative)")


def pod_update_errors(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    old_tolerations = old_spec.get("tolerations") or []
    if any(t not in (new_spec.get("tolerations") or []) for t in old_tolerations):
        return [FieldError("spec.tolerations", "Forbidden", None, "existing toleration can not be modified except "
                                                                     "its tolerationSeconds")]
    old_gates = {g.get("name") for g in old_spec.get("schedulingGates") or []}
    if not {g.get("name") for g in new_spec.get("schedulingGates") or []} <= old_gates:
        return [FieldError("spec.schedulingGates", "Forbidden", None, "only deletion is allowed, but found new "
                                                                         "scheduling gate")]
    if _immutable_view(new_spec) != _immutable_view(old_spec):
        return [FieldError("spec", "Forbidden", None, _POD_UPDATE_MSG)]
    return []


def _immutable_view(spec: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in spec.items()
            if k not in {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"}}
    for list_name in ("containers", "initContainers"):
        if list_name in view:
            view[list_name] = [{k: v for k, v in c.items() if k != "image"} for c in view[list_name]]
    return view
