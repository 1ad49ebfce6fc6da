"""The agent's manifests are valid Kubernetes objects and ask for exactly what the agent uses."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "agent" / "agent.yaml"
DOCS = list(yaml.safe_load_all(MANIFEST.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid(doc):
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_rbac_is_what_the_publisher_calls():
    (role,) = [d for d in DOCS if d["kind"] == "ClusterRole"]
    assert {(r["resources"][0], tuple(r["verbs"])) for r in role["rules"]} == {
        ("nodes", ("get", "patch")), ("pods", ("list", "patch")), ("events", ("create",))}


def test_daemonset_has_what_the_agent_needs():
    (ds,) = [d for d in DOCS if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True  # NVML's PIDs are the host's
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/kubelet/pod-resources" in mounts
    assert container["ports"][0]["containerPort"] == 9402
