"""The device hand-off webhook: AdmissionReview v1 in, JSON patch or a clear refusal out."""

from __future__ import annotations

import base64
import copy
import ssl

import aiohttp
import orjson
import pytest

from scheduler.extender.tls import issue_webhook_certificate, server_context
from scheduler.extender.webhook import WebhookSettings, decide, review
from tests.deploy.render import DEPLOY, pod_specs, render

SHARE_ENV = {
    "NVIDIA_VISIBLE_DEVICES": "metadata.annotations['gpusched.io/gpus']",
    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "metadata.annotations['gpusched.io/mps-thread-pct']",
    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "metadata.annotations['gpusched.io/mps-mem-limit']",
}


def admission(pod: dict, *, operation: str = "CREATE", uid: str = "req-1") -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "operation": operation, "namespace": pod["metadata"].get("namespace") or "ml",
                        "object": pod}}


def apply_patch(pod: dict, patch: list[dict]) -> dict:
    """A small RFC 6902 applier for the operations the webhook emits (add, replace, remove)."""
    out = copy.deepcopy(pod)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = out
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
            continue
        if isinstance(target, list):
            if last == "-":
                target.append(op["value"])
            else:
                target[int(last)] = op["value"]
        else:
            assert op["op"] == "replace" or last not in target, op
            target[last] = op["value"]
    return out


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", e.get("value"))
            for e in container.get("env") or []}


def share_pod(**extra) -> dict:
    limits = {"cpu": "1", "gpusched.io/gpu-milli": "500", "gpusched.io/gpu-memory": "8192", **extra}
    return {"metadata": {"generateName": "job-", "namespace": "ml"},
            "spec": {"schedulerName": "gpu-scheduler",
                     "containers": [{"name": "main", "image": "x", "resources": {"limits": limits}},
                                    {"name": "sidecar", "image": "y"}]}}


EXAMPLES = pod_specs(render(DEPLOY / "examples"))


@pytest.mark.parametrize(("name", "pod"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_every_example_pod_is_admitted_and_shares_get_their_devices(name, pod):
    answer, decision = review(admission(pod))
    response = answer["response"]
    assert response["uid"] == "req-1" and response["allowed"], response
    patched = apply_patch(pod, orjson.loads(base64.b64decode(response["patch"]))) if "patch" in response else pod
    for container in patched["spec"]["containers"]:
        limits = container.get("resources", {}).get("limits", {})
        if "gpusched.io/gpu-milli" in limits:
            assert env_of(container) == SHARE_ENV
        elif any(r.startswith("nvidia.com/") for r in limits):  # the device plugin sets the devices
            assert "NVIDIA_VISIBLE_DEVICES" not in env_of(container)
        else:  # no GPU: none, whatever the image says
            assert env_of(container)["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert decision.outcome == ("mutated" if "patch" in response else "allowed")


def test_the_examples_cover_every_row_of_the_pod_request_contract():
    names = {n for n, _ in EXAMPLES}
    assert {"whole-gpus", "half-gpu", "mps-quarter", "a100-or-h100", "not-on-t4", "allreduce-4",
            "bert-finetune-master", "bert-finetune-worker", "llm-pretrain", "detector-train"} <= names


@pytest.mark.parametrize(("limits", "annotations", "says"), [
    ({"nvidia.com/gpu": "0.5"}, {}, "nvidia.com/gpu must be a whole number, got '0.5'; for part of a GPU use gpusched.io/gpu-milli"),
    ({"nvidia.com/gpu": "500m"}, {}, "nvidia.com/gpu must be a whole number"),
    ({"nvidia.com/gpu": "1", "gpusched.io/gpu-milli": "500"}, {}, "asks for whole GPUs (nvidia.com/gpu: 1) and a share"),
    ({"gpusched.io/gpu-milli": "1000"}, {}, "between 1 and 999, got 1000 (for a whole GPU use nvidia.com/gpu: 1)"),
    ({"gpusched.io/gpu-milli": "1500"}, {}, "between 1 and 999, got 1500"),
    ({"gpusched.io/gpu-milli": "500"}, {"gpusched.io/sharing": "spatial"}, "unknown sharing mode 'spatial'"),
], ids=["half-a-gpu", "milli-quantity", "whole-and-share", "milli-1000", "milli-1500", "bad-sharing"])
def test_what_can_never_schedule_is_refused_with_the_reason(limits, annotations, says):
    pod = {"metadata": {"name": "p", "namespace": "ml", "annotations": annotations},
           "spec": {"schedulerName": "gpu-scheduler",
                    "containers": [{"name": "main", "image": "x", "resources": {"limits": limits}}]}}
    answer, _ = review(admission(pod))
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 400
    assert response["status"]["message"].startswith("gpusched cannot ever schedule this pod: ")
    assert says in response["status"]["message"]


def test_other_schedulers_pods_pass_untouched_even_if_invalid():
    pod = share_pod()
    pod["spec"]["schedulerName"] = "default-scheduler"
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "0.5"
    assert decide(pod).allowed and not decide(pod).patch


def test_the_mutation_is_idempotent_and_replaces_a_users_device_list():
    pod = share_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]
    once = apply_patch(pod, decide(pod).patch)
    assert env_of(once["spec"]["containers"][0]) == {"A": "1", **SHARE_ENV}
    assert decide(once).patch == []  # reinvocation adds nothing
    assert env_of(once["spec"]["containers"][1]) == {"NVIDIA_VISIBLE_DEVICES": "void"}  # no share: no GPU


def test_init_containers_with_a_share_get_the_environment_and_a_runtime_class_can_be_set():
    pod = share_pod()
    pod["spec"]["initContainers"] = [copy.deepcopy(pod["spec"]["containers"][0])]
    patched = apply_patch(pod, decide(pod, settings=WebhookSettings(share_runtime_class="nvidia")).patch)
    assert env_of(patched["spec"]["initContainers"][0]) == SHARE_ENV
    assert patched["spec"]["runtimeClassName"] == "nvidia"


@pytest.mark.parametrize(("body", "says"), [
    (b"not json", "body is not JSON"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"}', "expected an AdmissionReview"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}', "'request.uid' is missing"),
], ids=["garbage", "v1beta1", "no-uid"])
async def test_malformed_reviews_get_400_over_tls(webhook_server, body, says):
    url, context = webhook_server
    async with aiohttp.ClientSession() as session, session.post(f"{url}/mutate", data=body, ssl=context) as response:
        assert response.status == 400
        assert says in (await response.json())["error"]


async def test_a_review_over_tls_verified_against_the_issued_ca(webhook_server):
    url, context = webhook_server
    body = orjson.dumps(admission(share_pod()))
    async with aiohttp.ClientSession() as session, session.post(f"{url}/mutate", data=body, ssl=context) as response:
        answer = await response.json()
    assert answer["response"]["allowed"] and answer["response"]["patchType"] == "JSONPatch"


@pytest.fixture
async def webhook_server(tmp_path):
    from scheduler.core.engine import Engine
    from scheduler.extender.public import start_public
    from scheduler.extender.service import ExtenderService

    issued = issue_webhook_certificate(service="gpusched", namespace="gpu-system", extra_names=("127.0.0.1",))
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    server = await start_public(ExtenderService(Engine()), webhook=WebhookSettings(), host="127.0.0.1", port=0,
                                ssl_context=server_context(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    client = ssl.create_default_context(cadata=issued.ca_pem.decode())
    try:
        yield server.url, client
    finally:
        await server.close()
