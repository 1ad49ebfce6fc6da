"""Label and field selectors, parsed and matched as `k8s.io/apimachinery` does.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist),
comma-separated and all required. `!=` and `notin` also match objects without the key, as upstream.
`LabelSelector` objects (`matchLabels` / `matchExpressions`, as in PodDisruptionBudgets) match the same way.

Field selectors: `f=v`, `f==v`, `f!=v`, comma-separated, on the field labels each resource supports; any
other label is the server's 400 "field label not supported". A missing field reads as "" (so
`spec.nodeName=` selects unassigned pods) and booleans read as "true"/"false".

Syntax errors raise `errors.bad_request`, as the server answers them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SET_REQUIREMENT = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([^\s=!]+)\s*(==|=|!=)\s*(\S*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in | notin | exists | !exists   (= and == are `in` with one value, != is `notin`)
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


LabelMatcher = Callable[[Mapping[str, str]], bool]


def parse_label_selector(text: str) -> LabelMatcher:
    """A label selector query string as a predicate over an object's labels."""
    requirements = [_parse_requirement(part) for part in _split_top_level(text) if part.strip()]
    return lambda labels: all(r.matches(labels) for r in requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses (the values of `in (a,b)` contain commas)."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_requirement(part: str) -> Requirement:
    stripped = part.strip()
    if match := _SET_REQUIREMENT.match(stripped):
        key, operator, inner = match.groups()
        values = frozenset(v.strip() for v in inner.split(",") if v.strip())
        return Requirement(_checked_key(key), operator, frozenset(_checked_value(v) for v in values))
    if match := _EQUALITY_REQUIREMENT.match(stripped):
        key, operator, value = match.groups()
        return Requirement(_checked_key(key), "notin" if operator == "!=" else "in",
                           frozenset({_checked_value(value)}))
    if stripped.startswith("!"):
        return Requirement(_checked_key(stripped[1:].strip()), "!exists")
    if " " not in stripped:
        return Requirement(_checked_key(stripped), "exists")
    raise errors.bad_request(f"unable to parse requirement: {part!r}")


def _checked_key(key: str) -> str:
    if not _KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise errors.bad_request(f"unable to parse requirement: invalid label key {key!r}: name part must "
                                 "consist of alphanumeric characters, '-', '_' or '.'")
    return key


def _checked_value(value: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise errors.bad_request(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def match_label_selector_object(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Match a `LabelSelector` object. A nil or empty selector matches everything (callers decide otherwise)."""
    for key, value in ((selector or {}).get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in (selector or {}).get("matchExpressions") or []:
        operator = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}[
            expression["operator"]]
        if not Requirement(expression["key"], operator, frozenset(expression.get("values") or [])).matches(labels):
            return False
    return True


def is_empty_selector_object(selector: Mapping[str, Any] | None) -> bool:
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


FieldMatcher = Callable[[Mapping[str, Any]], bool]


def parse_field_selector(text: str, field_labels: Mapping[str, str]) -> FieldMatcher:
    """A field selector query string as a predicate over a served object."""
    terms: list[tuple[str, bool, str]] = []
    for part in _split_unescaped(text):
        if not part.strip():
            continue
        match = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)(.*)$", part)
        if not match:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        label, operator, value = match.groups()
        if label not in field_labels:
            raise errors.bad_request(f'field label not supported: {label}')
        terms.append((field_labels[label], operator != "!=", _unescape(value)))
    return lambda obj: all((field_value(obj, path) == value) == wanted for path, wanted, value in terms)


def _split_unescaped(text: str) -> list[str]:
    return re.split(r"(?<!\\),", text)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares: "" when missing, "true"/"false" for booleans."""
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
