"""`kind: Status` error bodies, shaped as the API server's `k8s.io/apimachinery/pkg/api/errors` shapes them.

Everything the fake refuses goes through `ApiError`, so the HTTP layer has exactly one way to answer a
failure and the client always gets a Status with `code`, `reason`, `message` and, where the real server
gives them, `details` (name, group, kind, causes, retryAfterSeconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """A refusal answered as a Status body with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_body(code=self.code, reason=self.reason, message=self.message, details=self.details)


def status_body(*, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def success_status(*, code: int | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the server answers when there is no object to return (a Binding, an Eviction, some deletes)."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if code is not None:
        body["code"] = code
    if details:
        body["details"] = details
    return body


@dataclass(frozen=True)
class GroupResource:
    """`pods` or `leases.coordination.k8s.io`: how error messages name a resource."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def details(self, name: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name, "kind": self.resource}
        if self.group:
            details["group"] = self.group
        return details


_CAUSE_REASONS = {"Invalid": "FieldValueInvalid", "Required": "FieldValueRequired",
                  "Forbidden": "FieldValueForbidden", "TooLong": "FieldValueTooLong",
                  "NotSupported": "FieldValueNotSupported"}


@dataclass(frozen=True)
class FieldError:
    """One validation failure, rendered as `field.Error` renders it (`spec.x: Invalid value: "v": why`)."""

    field: str
    type: str  # Invalid | Required | Forbidden | TooLong | NotSupported
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        if self.type == "Invalid":
            text = f"Invalid value: {_go_value(self.value)}"
        elif self.type == "Required":
            text = "Required value"
        elif self.type == "TooLong":
            text = "Too long"
        elif self.type == "NotSupported":
            text = f"Unsupported value: {_go_value(self.value)}"
        else:
            text = "Forbidden"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {"reason": _CAUSE_REASONS[self.type], "message": self.body(), "field": self.field}


class GoLiteral(str):
    """A value printed bare in a field error, as Go prints a non-string (`0x0`)."""


def _go_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) and not isinstance(value, GoLiteral) else str(value)


def not_found(gr: GroupResource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{gr} "{name}" not found', details=gr.details(name))


def already_exists(gr: GroupResource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{gr} "{name}" already exists', details=gr.details(name))


def conflict(gr: GroupResource, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {gr} "{name}": {why}',
                    details=gr.details(name))


STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 naming the kind as the server does: `Pod "x" is invalid: ...`, `Lease.coordination.k8s.io "x" ...`."""
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [e.cause() for e in errors]}
    if group:
        details["group"] = group
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json-patch+json, application/merge-patch+json, "
                    f"application/strategic-merge-patch+json (got {content_type!r})")


def too_many_requests(message: str, *, retry_after: int, causes: list[dict[str, str]]) -> ApiError:
    details: dict[str, Any] = {"causes": causes}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return ApiError(429, "TooManyRequests", message, details=details, headers=headers)


def unknown(code: int, message: str) -> ApiError:
    """A plain Go error that reached the handler: the server answers it with an empty reason."""
    return ApiError(code, "", message)


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Gone", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


def injected(code: int, message: str | None, *, retry_after: int | None = None) -> ApiError:
    """A failure a test asked for (`fail_next`), with the reason the server uses for that code."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    details = {"retryAfterSeconds": retry_after} if retry_after is not None else None
    return ApiError(code, _REASONS.get(code, ""), message or f"injected failure ({code})", details=details,
                    headers=headers)
