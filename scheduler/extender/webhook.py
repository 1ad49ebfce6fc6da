"""The device hand-off admission webhook (DESIGN §4): `POST /mutate`, AdmissionReview v1.

For pods whose `spec.schedulerName` is gpusched's, at creation (and when an ephemeral container
is added, `pods/ephemeralcontainers`):
- it refuses what would hand out GPUs gpusched never records (`handoff`: a privileged
  container, a device-list volume mount, a `cdi.k8s.io/*` annotation, a pod created with
  `spec.nodeName`), 403 with the reason;
- it rejects at admission what can never schedule (`parse_pod` raises `InvalidRequest`: a
  fractional `nvidia.com/gpu`, whole GPUs and a share at once, `gpusched.io/gpu-milli` outside
  1..999, an unreadable model selector, ...), 400 with the core's message verbatim;
- it removes gpusched's own record annotations a new pod brings along, and gives every
  container the environment of what it is handed (`handoff` rule 3): a share container
  `NVIDIA_VISIBLE_DEVICES` from the downward API (`metadata.annotations['gpusched.io/gpus']`)
  and `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` / `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` from the MPS
  annotations; a device-plugin container no device list of its own; every other container
  `NVIDIA_VISIBLE_DEVICES=void`. The kubelet resolves the downward API when it starts the
  container, after the binder wrote the annotations (it writes them before the Binding). On a
  time-sliced GPU the MPS annotations are absent, the variables are empty, and CUDA ignores
  them because no MPS server runs there.

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

from scheduler.core.request import InvalidRequest, parse_pod
from scheduler.extender import handoff

log = logging.getLogger(__name__)
ADMISSION_VERSION = "admission.k8s.io/v1"
DEFAULT_SCHEDULER_NAME = "gpu-scheduler"
EPHEMERAL_SUBRESOURCE = "ephemeralcontainers"
_JSON = "application/json"


class ReviewError(ValueError):
    """A body that is not an AdmissionReview v1 request; answered 400 with the message."""


@dataclass(frozen=True)
class Decision:
    """What the webhook says about one pod: allowed with a JSON patch (maybe empty), or denied."""

    allowed: bool
    message: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)
    code: int = 400
    """A denial's HTTP status: 400 for a request that can never schedule, 403 for a refused one."""

    @property
    def outcome(self) -> str:
        """The `outcome` label of gpusched_admission_reviews_total: refused (403, the hand-off
        rules), rejected (400, can never schedule), mutated or allowed."""
        if not self.allowed:
            return "refused" if self.code == 403 else "rejected"
        return "mutated" if self.patch else "allowed"


@dataclass(frozen=True)
class WebhookSettings:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    share_runtime_class: str = ""
    """If set, share pods without a runtimeClassName get this one (the NVIDIA runtime, where it
    is not the node's default: only that runtime reads NVIDIA_VISIBLE_DEVICES)."""


def decide(pod: Mapping[str, Any], *, settings: WebhookSettings = WebhookSettings(),
           namespace: str = "") -> Decision:
    """The decision for one pod as the API server hands it to admission (before defaulting:
    `generateName` instead of a name, maybe no namespace, requests possibly only as limits)."""
    if not _ours(pod, settings):
        return Decision(True)
    refused = handoff.creation_refusal(pod)
    if refused:
        return Decision(False, f"gpusched refuses this pod: {refused}", code=403)
    try:
        parse_pod(_named(pod, namespace))
    except InvalidRequest as e:
        return Decision(False, f"gpusched cannot ever schedule this pod: {e}")
    spec = _spec(pod)
    patch = handoff.record_annotation_ops(pod) + handoff.env_ops(spec, handoff.CONTAINER_LISTS)
    wants_share = any(handoff.grant_of(ct) is handoff.Grant.SHARE
                      for key, _ in handoff.CONTAINER_LISTS for ct in spec.get(key) or [])
    if wants_share and settings.share_runtime_class and not spec.get("runtimeClassName"):
        patch.append({"op": "add", "path": "/spec/runtimeClassName", "value": settings.share_runtime_class})
    return Decision(True, patch=patch)


def decide_ephemeral(pod: Mapping[str, Any], old: Any = None, *,
                     settings: WebhookSettings = WebhookSettings()) -> Decision:
    """The decision for ephemeral containers being added to a running pod (`kubectl debug`);
    those `old` (the pod before) already had were admitted then and are left alone."""
    if not _ours(pod, settings):
        return Decision(True)
    existing = handoff.ephemeral_names(old)
    refused = handoff.containers_refusal(_spec(pod), handoff.EPHEMERAL, existing=existing)
    if refused:
        return Decision(False, f"gpusched refuses this pod: {refused}", code=403)
    return Decision(True, patch=handoff.env_ops(_spec(pod), handoff.EPHEMERAL, existing=existing))


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
    operation, subresource = request.get("operation", "CREATE"), request.get("subResource") or ""
    if kind.get("kind") != "Pod" or not isinstance(obj, Mapping):
        decision = Decision(True)
    elif operation == "CREATE" and not subresource:
        decision = decide(obj, settings=settings, namespace=str(request.get("namespace") or ""))
    elif operation == "UPDATE" and subresource == EPHEMERAL_SUBRESOURCE:
        decision = decide_ephemeral(obj, request.get("oldObject"), settings=settings)
    else:
        decision = Decision(True)  # only pod creation and ephemeral containers are ours to look at
    response: dict[str, Any] = {"uid": request["uid"], "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": decision.code, "reason": "Forbidden" if decision.code == 403 else "BadRequest",
                              "message": decision.message}
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


def _ours(pod: Mapping[str, Any], settings: WebhookSettings) -> bool:
    return (_spec(pod).get("schedulerName") or "default-scheduler") == settings.scheduler_name


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}
