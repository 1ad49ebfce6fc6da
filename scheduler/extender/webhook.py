"""The device hand-off admission webhook (DESIGN §4): `POST /mutate`, AdmissionReview v1.

For pods whose `spec.schedulerName` is gpusched's:
- it rejects at admission what can never schedule (`parse_pod` raises `InvalidRequest`: a
  fractional `nvidia.com/gpu`, whole GPUs and a share at once, `gpusched.io/gpu-milli` outside
  1..999, an unreadable model selector, ...); the message is the core's, verbatim;
- it hands every container that asks for a share (`gpusched.io/gpu-milli`) the GPU the binder
  will record, through the environment: `NVIDIA_VISIBLE_DEVICES` from the downward API
  (`metadata.annotations['gpusched.io/gpus']`), and `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` /
  `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` from the MPS annotations. The kubelet resolves these when
  it starts the container, after the binder wrote the annotations (it writes them before the
  Binding). On a time-sliced GPU the MPS annotations are absent, the variables are empty, and
  CUDA ignores them because no MPS server runs there.

Whole-GPU containers are left alone: the NVIDIA device plugin sets their devices.
Pods of other schedulers are allowed untouched. The mutation is idempotent, so a reinvocation
(`reinvocationPolicy: IfNeeded`) adds nothing twice. Plain dicts in and out: this module knows
the AdmissionReview JSON, not the Kubernetes client.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from scheduler.core import contract as c
from scheduler.core.request import InvalidRequest, parse_pod

log = logging.getLogger(__name__)
ADMISSION_VERSION = "admission.k8s.io/v1"
DEFAULT_SCHEDULER_NAME = "gpu-scheduler"

VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
MPS_THREAD_PCT_ENV = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
MPS_MEM_LIMIT_ENV = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"

_SHARE_ENV = ((VISIBLE_DEVICES_ENV, c.ASSIGNED_GPUS_ANNOTATION),
              (MPS_THREAD_PCT_ENV, c.MPS_THREAD_PCT_ANNOTATION),
              (MPS_MEM_LIMIT_ENV, c.MPS_MEM_LIMIT_ANNOTATION))
_CONTAINER_LISTS = ("initContainers", "containers")
_JSON = "application/json"


class ReviewError(ValueError):
    """A body that is not an AdmissionReview v1 request; answered 400 with the message."""


@dataclass(frozen=True)
class Decision:
    """What the webhook says about one pod: allowed with a JSON patch (maybe empty), or denied."""

    allowed: bool
    message: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if not self.allowed:
            return "rejected"
        return "mutated" if self.patch else "allowed"


@dataclass(frozen=True)
class WebhookSettings:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    share_runtime_class: str = ""
    """If set, share pods without a runtimeClassName get this one (the NVIDIA runtime, where it
    is not the node's default: only that runtime reads NVIDIA_VISIBLE_DEVICES)."""


def env_from_annotation(name: str, annotation: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": f"metadata.annotations['{annotation}']"}}}


def decide(pod: Mapping[str, Any], *, settings: WebhookSettings = WebhookSettings(),
           namespace: str = "") -> Decision:
    """The decision for one pod as the API server hands it to admission (before defaulting:
    `generateName` instead of a name, maybe no namespace, requests possibly only as limits)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    if (spec.get("schedulerName") or "default-scheduler") != settings.scheduler_name:
        return Decision(True)
    try:
        parse_pod(_named(pod, namespace))
    except InvalidRequest as e:
        return Decision(False, f"gpusched cannot ever schedule this pod: {e}")
    patch: list[dict[str, Any]] = []
    wants_share = False
    for key in _CONTAINER_LISTS:
        for i, container in enumerate(spec.get(key) or []):
            if _asks_for_share(container):
                wants_share = True
                patch.extend(_env_ops(f"/spec/{key}/{i}", container))
    if wants_share and settings.share_runtime_class and not spec.get("runtimeClassName"):
        patch.append({"op": "add", "path": "/spec/runtimeClassName", "value": settings.share_runtime_class})
    return Decision(True, patch=patch)


def review(body: Any, *, settings: WebhookSettings = WebhookSettings()) -> tuple[dict[str, Any], Decision]:
    """The AdmissionReview response for an AdmissionReview request (decoded JSON)."""
    if not isinstance(body, Mapping):
        raise ReviewError("body is not a JSON object")
    if body.get("apiVersion") != ADMISSION_VERSION or body.get("kind") != "AdmissionReview":
        raise ReviewError(f"expected an AdmissionReview {ADMISSION_VERSION}, got "
                          f"{body.get('kind')!r} {body.get('apiVersion')!r}")
    request = body.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise ReviewError("'request.uid' is missing")
    kind = request.get("kind") if isinstance(request.get("kind"), Mapping) else {}
    obj = request.get("object")
    if kind.get("kind") != "Pod" or request.get("operation", "CREATE") != "CREATE" or not isinstance(obj, Mapping):
        decision = Decision(True)  # only pod creation is ours to look at
    else:
        decision = decide(obj, settings=settings, namespace=str(request.get("namespace") or ""))
    response: dict[str, Any] = {"uid": request["uid"], "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": 400, "reason": "BadRequest", "message": decision.message}
    elif decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(decision.patch)).decode()
    return {"apiVersion": ADMISSION_VERSION, "kind": "AdmissionReview", "response": response}, decision


def add_webhook_routes(app: web.Application, *, settings: WebhookSettings,
                       registry: CollectorRegistry | None = None, path: str = "/mutate") -> None:
    reviews = Counter("gpusched_admission_reviews_total", "Admission reviews answered, by outcome.", ["outcome"],
                      registry=registry)

    async def mutate(request: web.Request) -> web.Response:
        body: Any = None
        try:
            body = orjson.loads(await request.read())
            answer, decision = review(body, settings=settings)
        except (orjson.JSONDecodeError, ReviewError) as e:
            reviews.labels("bad_request").inc()
            message = "body is not JSON" if isinstance(e, orjson.JSONDecodeError) else str(e)
            return web.Response(status=400, body=orjson.dumps({"error": f"mutate: {message}"}), content_type=_JSON)
        except Exception as e:  # a bug: deny (fail closed, as failurePolicy: Fail would), never a 500
            log.exception("admission review failed")
            reviews.labels("error").inc()
            answer = _internal_error(body, f"gpusched webhook failed: internal error ({type(e).__name__}: {e})")
            return web.Response(body=orjson.dumps(answer), content_type=_JSON)
        reviews.labels(decision.outcome).inc()
        return web.Response(body=orjson.dumps(answer), content_type=_JSON)

    app.router.add_post(path, mutate)


# --------------------------------------------------------------------------- helpers
def _internal_error(body: Mapping[str, Any], message: str) -> dict[str, Any]:
    """A denial for a review `review` accepted as an AdmissionReview but then failed on."""
    request = body.get("request") if isinstance(body, Mapping) else None
    uid = request.get("uid") if isinstance(request, Mapping) else ""
    return {"apiVersion": ADMISSION_VERSION, "kind": "AdmissionReview",
            "response": {"uid": uid if isinstance(uid, str) else "", "allowed": False,
                         "status": {"code": 500, "reason": "InternalError", "message": message}}}


def _named(pod: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A copy `parse_pod` accepts: at admission a generated name and the namespace may be absent."""
    meta = dict(pod.get("metadata") or {}) if isinstance(pod.get("metadata"), Mapping) else {}
    if not meta.get("name"):
        meta["name"] = f"{meta.get('generateName') or 'pod-'}(generated)"
    if not meta.get("namespace") and namespace:
        meta["namespace"] = namespace
    return {**pod, "metadata": meta}


def _asks_for_share(container: Any) -> bool:
    if not isinstance(container, Mapping):
        return False
    resources = container.get("resources") or {}
    return any(isinstance(part, Mapping) and str(part.get(c.MILLI_RESOURCE, "0")).strip() not in ("", "0")
               for part in (resources.get("requests"), resources.get("limits")))


def _env_ops(container_path: str, container: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch operations giving one container the share environment, idempotently.

    A variable the user set under one of these names is replaced: a share container that
    could name its own devices (`NVIDIA_VISIBLE_DEVICES=all`) would escape its share.
    """
    env = container.get("env")
    wanted = [env_from_annotation(name, annotation) for name, annotation in _SHARE_ENV]
    if not isinstance(env, list) or not env:
        return [{"op": "add", "path": f"{container_path}/env", "value": wanted}]
    ops: list[dict[str, Any]] = []
    index = {entry["name"]: i for i, entry in enumerate(env)
             if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)}
    for entry in wanted:
        i = index.get(entry["name"])
        if i is None:
            ops.append({"op": "add", "path": f"{container_path}/env/-", "value": entry})
        elif env[i] != entry:
            ops.append({"op": "replace", "path": f"{container_path}/env/{i}", "value": entry})
    return ops
