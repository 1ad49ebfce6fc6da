"""deploy/base runs the agent the way the agent needs to run, and grants exactly what it calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.deploy.render import DEPLOY, find, render

PUBLISHER = Path(__file__).resolve().parents[2] / "scheduler" / "agent" / "publisher.py"
# The CoreV1Api methods the publisher calls, and the RBAC (resource, verb) each one needs.
NEEDS = {"read_node": ("nodes", "get"), "patch_node": ("nodes", "patch"),
         "list_pod_for_all_namespaces": ("pods", "list"), "patch_namespaced_pod": ("pods", "patch"),
         "create_namespaced_event": ("events", "create")}


@pytest.fixture(scope="module")
def base():
    return render(DEPLOY / "base")


def test_the_role_grants_every_call_the_publisher_makes(base):
    called = {node.func.attr for node in ast.walk(ast.parse(PUBLISHER.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "api"}
    assert called == set(NEEDS), "a new API call: add it to NEEDS and to deploy/base/rbac-agent.yaml"
    role = find(base, "ClusterRole", "gpusched-agent")
    granted = {(resource, verb) for rule in role["rules"] if rule.get("apiGroups") == [""]
               for resource in rule["resources"] for verb in rule["verbs"]}
    # exactly: a verb nobody calls is reach an attacker on a GPU node gets for free
    assert granted == set(NEEDS.values())


def test_the_daemonset_gives_the_agent_what_it_reads(base):
    pod = find(base, "DaemonSet", "gpusched-agent")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True  # NVML's PIDs are the host's; their cgroups name the pods
    (agent,) = pod["containers"]
    assert agent["args"][0] == "agent"
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    # and as a volume-mount device list, for nodes whose toolkit ignores the variable (docs/security.md)
    mount = next(m for m in agent["volumeMounts"] if m["mountPath"] == "/var/run/nvidia-container-devices/all")
    assert next(v for v in pod["volumes"] if v["name"] == mount["name"])["hostPath"]["path"] == "/dev/null"
    mounts = {m["mountPath"] for m in agent["volumeMounts"]}
    assert "/var/lib/kubelet/pod-resources" in mounts  # podresources.client.DEFAULT_SOCKET's directory
    assert "/run/nvidia/mps" in mounts  # mps.DEFAULT_PIPE_DIRS, the device plugin's MPS root
    assert agent["securityContext"]["runAsUser"] == 0  # the pod-resources socket is root's
    assert {p["containerPort"] for p in agent["ports"]} == {9402}
