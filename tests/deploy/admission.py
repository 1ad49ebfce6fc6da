"""ValidatingAdmissionPolicies evaluated offline: deploy/'s CEL against sample admission requests.

`cel-python` stands in for the API server's CEL (same grammar and standard functions; the
Kubernetes extension libraries are not used by gpusched's policies). A request is the shape the
API server gives CEL (`request`, `object`, `oldObject`); `admit` applies the policy's resource
rules, match conditions, variables in order and validations, and answers like the API server:
allowed, or the first failing validation's message. An evaluation error is reported as such, so a
test sees a policy that would fail (closed) on real requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import celpy
from celpy.evaluation import CELEvalError


class PolicyError(AssertionError):
    """An expression did not compile or did not evaluate: the API server would fail the request."""


@dataclass(frozen=True)
class Verdict:
    matched: bool
    allowed: bool
    message: str = ""


def request(*, user: str, resource: str, obj: dict[str, Any], old: dict[str, Any], operation: str = "UPDATE",
            groups: list[str] | None = None, node: str | None = None) -> dict[str, Any]:
    """The CEL activation for one request; `node` is the token's authentication.kubernetes.io/node-name."""
    user_info: dict[str, Any] = {"username": user}
    if groups is not None:
        user_info["groups"] = groups
    if node is not None:
        user_info["extra"] = {"authentication.kubernetes.io/node-name": [node]}
    return {"request": {"operation": operation, "userInfo": user_info,
                        "resource": {"group": "", "version": "v1", "resource": resource}},
            "object": obj, "oldObject": old}


def admit(policy: dict[str, Any], activation: dict[str, Any]) -> Verdict:
    spec = policy["spec"]
    req = activation["request"]
    if not any(req["operation"] in rule["operations"] and req["resource"]["resource"] in rule["resources"]
               for rule in spec["matchConstraints"]["resourceRules"]):
        return Verdict(False, True)
    values = dict(activation)
    for condition in spec.get("matchConditions", []):
        if not _evaluate(condition["expression"], values):
            return Verdict(False, True)
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):
        variables[variable["name"]] = _evaluate(variable["expression"], {**values, "variables": variables}, raw=True)
    values["variables"] = variables
    for validation in spec["validations"]:
        if not _evaluate(validation["expression"], values):
            message = validation.get("message", "")
            if "messageExpression" in validation:
                message = str(_evaluate(validation["messageExpression"], values, raw=True))
            return Verdict(True, False, message)
    return Verdict(True, True)


def _evaluate(expression: str, values: dict[str, Any], *, raw: bool = False) -> Any:
    env = celpy.Environment()
    try:
        program = env.program(env.compile(expression))
    except celpy.CELParseError as e:
        raise PolicyError(f"does not compile: {expression!r}: {e}") from None
    activation = {k: (_cel_map(v) if k == "variables" else celpy.json_to_cel(v)) for k, v in values.items()}
    try:
        result = program.evaluate(activation)
    except CELEvalError as e:
        raise PolicyError(f"fails on this request: {expression!r}: {e}") from None
    if isinstance(result, CELEvalError):
        raise PolicyError(f"fails on this request: {expression!r}: {result}")
    if raw:
        return result
    if not isinstance(result, celpy.celtypes.BoolType):
        raise PolicyError(f"is not a boolean: {expression!r} gave {result!r}")
    return bool(result)


def _cel_map(values: dict[str, Any]) -> celpy.celtypes.MapType:
    """Variables already evaluated (CEL values), as the `variables` object CEL selects fields of."""
    return celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in values.items()})
