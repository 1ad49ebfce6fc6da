"""No container of a pod the webhook handles sees a GPU gpusched did not give it (issue 13 item 4).

Every container of a pod of gpusched's scheduler (init, sibling, ephemeral) ends up with
`NVIDIA_VISIBLE_DEVICES` set to what gpusched records for it: the record's UUIDs for a share, the
device plugin's own list for device-plugin GPUs (a user's value is removed so the plugin's
stands), `void` for everything else. What would hand devices out another way is refused.
"""

from __future__ import annotations

import copy

import pytest

from scheduler.extender.webhook import decide, review
from tests.webhook.test_webhook import SHARE_ENV, admission, apply_patch, env_of, share_pod

ALL = {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}


def gpu_pod(*containers: dict, **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "ml"},
            "spec": {"schedulerName": "gpu-scheduler", "containers": list(containers), **spec}}


def container(name: str, *, env: list | None = None, limits: dict | None = None) -> dict:
    out: dict = {"name": name, "image": "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04"}
    if limits:
        out["resources"] = {"limits": limits}
    if env is not None:
        out["env"] = env
    return out


def mutated(pod: dict) -> dict:
    decision = decide(pod)
    assert decision.allowed, decision.message
    out = apply_patch(pod, decision.patch)
    assert decide(out).patch == [], "the mutation is not idempotent"
    return out


# ------------------------------------------------------------------------------- environments
def test_a_sibling_of_a_share_container_sees_no_gpu_even_if_it_asks_for_all():
    pod = share_pod()
    pod["spec"]["containers"][1]["env"] = [ALL]
    out = mutated(pod)
    assert env_of(out["spec"]["containers"][0]) == SHARE_ENV
    assert env_of(out["spec"]["containers"][1]) == {"NVIDIA_VISIBLE_DEVICES": "void"}


def test_an_init_container_without_a_share_sees_no_gpu():
    pod = share_pod()
    pod["spec"]["initContainers"] = [container("setup", env=[ALL, {"name": "X", "value": "1"}])]
    out = mutated(pod)
    assert env_of(out["spec"]["initContainers"][0]) == {"X": "1", "NVIDIA_VISIBLE_DEVICES": "void"}


def test_a_cpu_only_pod_of_the_gpu_scheduler_sees_no_gpu():
    # CUDA images set NVIDIA_VISIBLE_DEVICES=all themselves: only an explicit value overrides the image
    pod = gpu_pod(container("main", env=[ALL]), container("plain", limits={"cpu": "1"}))
    out = mutated(pod)
    for c in out["spec"]["containers"]:
        assert env_of(c) == {"NVIDIA_VISIBLE_DEVICES": "void"}


@pytest.mark.parametrize("resource", ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"])
def test_a_device_plugin_container_keeps_the_plugins_devices_not_its_own(resource):
    # the kubelet applies the pod's env after the device plugin's: a user's "all" would win
    c = container("train", env=[ALL, {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility,video"}])
    c["resources"] = {"limits": {resource: "1"}}
    out = mutated(gpu_pod(c))
    assert env_of(out["spec"]["containers"][0]) == {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility,video"}


@pytest.mark.parametrize("name", ["NVIDIA_MIG_CONFIG_DEVICES", "NVIDIA_MIG_MONITOR_DEVICES", "NVIDIA_IMEX_CHANNELS",
                                  "NVIDIA_GDS", "NVIDIA_MOFED", "NVIDIA_NVSWITCH", "NVIDIA_GDRCOPY"])
def test_other_device_selecting_variables_are_removed_everywhere(name):
    pod = share_pod()
    for c in pod["spec"]["containers"]:
        c["env"] = [{"name": name, "value": "all"}]
    out = mutated(pod)
    assert name not in env_of(out["spec"]["containers"][0]) and name not in env_of(out["spec"]["containers"][1])


def test_without_a_gpu_no_nvidia_toolkit_variable_is_left():
    pod = gpu_pod(container("main", env=[{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "all"},
                                         {"name": "NVIDIA_REQUIRE_CUDA", "value": "cuda>=12"}]))
    assert env_of(mutated(pod)["spec"]["containers"][0]) == {"NVIDIA_VISIBLE_DEVICES": "void"}


def test_an_ephemeral_container_added_later_sees_no_gpu():
    running = mutated(share_pod())
    running["spec"]["nodeName"] = "gpu-1"
    running["metadata"]["annotations"] = {"gpusched.io/gpus": "GPU-1", "gpusched.io/node": "gpu-1"}
    before = copy.deepcopy(running)
    running["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox", "env": [ALL]}]
    body = admission(running, operation="UPDATE")
    body["request"].update(subResource="ephemeralcontainers", oldObject=before)
    answer, decision = review(body)
    assert answer["response"]["allowed"], answer
    out = apply_patch(running, decision.patch)
    assert env_of(out["spec"]["ephemeralContainers"][0]) == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert out["metadata"] == running["metadata"] and out["spec"]["containers"] == running["spec"]["containers"]


def test_ephemeral_containers_already_there_are_left_alone():
    # the API refuses any change to an existing ephemeral container: only the new one is handed off
    running = mutated(share_pod())
    running["spec"]["nodeName"] = "gpu-1"
    old_debugger = {"name": "old", "image": "busybox", "securityContext": {"privileged": True}}
    running["spec"]["ephemeralContainers"] = [old_debugger]
    before = copy.deepcopy(running)
    running["spec"]["ephemeralContainers"].append({"name": "new", "image": "busybox"})
    body = admission(running, operation="UPDATE")
    body["request"].update(subResource="ephemeralcontainers", oldObject=before)
    answer, decision = review(body)
    assert answer["response"]["allowed"], answer
    out = apply_patch(running, decision.patch)
    assert out["spec"]["ephemeralContainers"][0] == old_debugger
    assert env_of(out["spec"]["ephemeralContainers"][1]) == {"NVIDIA_VISIBLE_DEVICES": "void"}


def test_a_privileged_ephemeral_container_is_refused():
    running = mutated(share_pod())
    running["spec"]["nodeName"] = "gpu-1"
    running["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox",
                                               "securityContext": {"privileged": True}}]
    body = admission(running, operation="UPDATE")
    body["request"]["subResource"] = "ephemeralcontainers"
    answer, _ = review(body)
    assert answer["response"]["allowed"] is False
    assert "ephemeral container debugger is privileged" in answer["response"]["status"]["message"]


# ----------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(("change", "says"), [
    (lambda p: p["spec"]["containers"][1].update(securityContext={"privileged": True}),
     "container sidecar is privileged: a privileged container sees every GPU of its node"),
    (lambda p: p["spec"].update(initContainers=[{"name": "init", "image": "x", "securityContext": {"privileged": True}}]),
     "init container init is privileged"),
    (lambda p: p["spec"].update(nodeName="gpu-1"),
     "spec.nodeName is set at creation"),
    (lambda p: p["metadata"].update(annotations={"cdi.k8s.io/gpus": "nvidia.com/gpu=all"}),
     "annotation cdi.k8s.io/gpus asks the container runtime for devices directly"),
    (lambda p: p["spec"]["containers"][1].update(volumeMounts=[
        {"name": "null", "mountPath": "/var/run/nvidia-container-devices/all"}]),
     "container sidecar mounts /var/run/nvidia-container-devices/all"),
    (lambda p: p["spec"]["containers"][1].update(volumeMounts=[
        {"name": "null", "mountPath": "/var/run/../run/nvidia-container-devices/"}]),
     "mounts /var/run/../run/nvidia-container-devices/: a mount under /var/run/nvidia-container-devices"),
    (lambda p: p["spec"]["containers"][1].update(name=["not", "a", "name"]),  # found by tests/hostile
     "spec.containers[1] is not a container with a name"),
], ids=["privileged", "privileged-init", "node-name", "cdi-annotation", "device-list-mount", "device-list-root",
        "unnamed-container"])
def test_what_would_hand_out_devices_another_way_is_refused(change, says):
    pod = share_pod()
    change(pod)
    answer, decision = review(admission(pod))
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 403 and response["status"]["reason"] == "Forbidden"
    assert response["status"]["message"].startswith("gpusched refuses this pod: ")
    assert says in response["status"]["message"]
    assert decision.outcome == "refused"  # gpusched_admission_reviews_total{outcome="refused"}


def test_a_record_supplied_at_creation_is_removed_and_user_annotations_stay():
    pod = share_pod()
    pod["metadata"]["annotations"] = {"gpusched.io/gpus": "GPU-a,GPU-b", "gpusched.io/node": "gpu-1",
                                      "gpusched.io/gpu-milli": "999", "gpusched.io/mps-thread-pct": "100",
                                      "gpusched.io/borrowed": "false", "gpusched.io/gpu-model": "A100*",
                                      "example.com/owner": "me"}
    out = mutated(pod)
    assert out["metadata"]["annotations"] == {"gpusched.io/gpu-model": "A100*", "example.com/owner": "me"}


def test_other_schedulers_pods_are_still_not_ours():
    pod = share_pod()
    pod["spec"]["schedulerName"] = "default-scheduler"
    pod["spec"]["containers"][1].update(securityContext={"privileged": True}, env=[ALL])
    assert decide(pod).allowed and not decide(pod).patch
