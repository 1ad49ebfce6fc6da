"""deploy/ grants each component the least it needs (issue 13 item 9; docs/security.md).

- Pod Security: every namespace says its level; the scheduler runs under `restricted`, only the
  agent's own namespace is `privileged`.
- The agent: RBAC cannot scope its node and pod writes to its node, so the admission policy
  `gpusched-agent-scope` must cover every write RBAC grants it, and does what it says (its CEL is
  evaluated against sample requests).
- Pod records: only gpusched's service accounts change gpusched's annotations of a pod.
- Network: each namespace denies ingress by default; the scheduler pods accept 8443 (webhook,
  probes, metrics) and monitoring on 10259; the agents accept monitoring on their metrics port.
"""

from __future__ import annotations

import copy

import pytest

from scheduler.core import contract as c
from tests.deploy.admission import admit, request
from tests.deploy.render import DEPLOY, find, render

SCHEDULER_SA = "system:serviceaccount:gpu-system:gpu-scheduler"
AGENT_SA = "system:serviceaccount:gpu-agent:gpusched-agent"
PSA = "pod-security.kubernetes.io/enforce"
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")


@pytest.fixture(scope="module")
def base():
    return render(DEPLOY / "base")


@pytest.fixture(scope="module")
def examples():
    return render(DEPLOY / "examples")


def workloads(docs):
    return [d for d in docs if d["kind"] in WORKLOADS]


def service_account(docs, name: str) -> str:
    sa = find(docs, "ServiceAccount", name)["metadata"]
    return f"system:serviceaccount:{sa['namespace']}:{sa['name']}"


# ---------------------------------------------------------------------------------- Pod Security
@pytest.mark.parametrize("where", ["base", "examples"])
def test_every_namespace_states_its_pod_security_level(where, base, examples):
    docs = {"base": base, "examples": examples}[where]
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert namespaces
    for ns in namespaces:
        assert ns["metadata"]["labels"].get(PSA) in ("restricted", "baseline", "privileged"), ns["metadata"]["name"]
    assert {ns["metadata"]["name"]: ns["metadata"]["labels"][PSA] for ns in namespaces} == (
        {"gpu-system": "restricted", "gpu-agent": "privileged"} if where == "base"
        else {"ml-demo": "baseline", "team-vision": "baseline"})


def test_only_the_agent_runs_in_the_privileged_namespace_and_the_scheduler_is_restricted(base):
    where = {w["metadata"]["name"]: w["metadata"]["namespace"] for w in workloads(base)}
    assert where == {"gpu-scheduler": "gpu-system", "gpusched-agent": "gpu-agent"}
    pod = find(base, "Deployment", "gpu-scheduler")["spec"]["template"]["spec"]
    # the restricted profile, field by field (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all(set(v) - {"name"} <= {"configMap", "secret", "emptyDir", "projected", "downwardAPI"}
               for v in pod["volumes"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert not sc.get("privileged") and "add" not in sc["capabilities"]
        assert not any("hostPort" in p for p in container.get("ports", []))


def test_the_webhook_stays_out_of_gpuscheds_own_namespaces(base):
    hook = find(base, "MutatingWebhookConfiguration", "gpusched")["webhooks"][0]
    [expression] = hook["namespaceSelector"]["matchExpressions"]
    assert expression["operator"] == "NotIn"
    assert {w["metadata"]["namespace"] for w in workloads(base)} <= set(expression["values"])


# ------------------------------------------------------------------------ the agent's reach
def node(name: str, annotations: dict, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "annotations": annotations, "labels": labels or {"zone": "a"}},
            "spec": {"podCIDR": "10.0.0.0/24"}}


def pod(node_name: str, annotations: dict, labels: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "ml", "annotations": annotations, "labels": labels or {}},
            "spec": {"nodeName": node_name, "containers": [{"name": "main", "image": "x"}]}}


def test_the_agent_scope_policy_covers_every_write_rbac_gives_the_agent(base):
    role = find(base, "ClusterRole", "gpusched-agent")
    writes = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]
              if verb not in ("get", "list", "watch")}
    policy = find(base, "ValidatingAdmissionPolicy", "gpusched-agent-scope")
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert {r for r, _ in writes} - {"events"} <= set(rule["resources"]), "a write the policy does not scope"
    assert {v for r, v in writes if r != "events"} == {"patch"} and rule["operations"] == ["UPDATE"]
    binding = find(base, "ClusterRoleBinding", "gpusched-agent")
    [subject] = binding["subjects"]
    assert service_account(base, subject["name"]) == AGENT_SA
    assert f"'{AGENT_SA}'" in policy["spec"]["matchConditions"][0]["expression"]
    assert find(base, "ValidatingAdmissionPolicyBinding", "gpusched-agent-scope")["spec"] == {
        "policyName": "gpusched-agent-scope", "validationActions": ["Deny"]}


AGENT_CASES = [
    ("nodes", node("gpu-1", {"gpusched.io/gpus": "[]", "other": "x"}),
     node("gpu-1", {"gpusched.io/gpus": "[1]", "gpusched.io/agent-heartbeat": "t", "other": "x"}), "gpu-1", ""),
    ("nodes", node("gpu-2", {"gpusched.io/gpus": "[]"}), node("gpu-2", {"gpusched.io/gpus": "[1]"}), "gpu-1",
     "the gpusched agent of node gpu-1 may change only that node and the pods bound to it"),
    ("nodes", node("gpu-1", {"other": "x"}), node("gpu-1", {"other": "y"}), "gpu-1",
     "may change only gpusched.io/ annotations of its node"),
    ("nodes", node("gpu-1", {"other": "x"}), node("gpu-1", {}), "gpu-1", "may change only gpusched.io/ annotations"),
    ("nodes", node("gpu-1", {}), node("gpu-1", {}, {"zone": "b"}), "gpu-1", "may not change labels or spec"),
    ("nodes", node("gpu-1", {}), node("gpu-1", {"gpusched.io/gpus": "[]"}), None,
     "the gpusched agent's token names no node"),
    ("pods", pod("gpu-1", {"gpusched.io/gpus": "GPU-a"}), pod("gpu-1", {"gpusched.io/gpus": "GPU-b"}), "gpu-1", ""),
    ("pods", pod("gpu-2", {"gpusched.io/gpus": "GPU-a"}), pod("gpu-2", {"gpusched.io/gpus": "GPU-b"}), "gpu-1",
     "may change only that node and the pods bound to it"),
    ("pods", pod("gpu-1", {"gpusched.io/node": "gpu-1"}), pod("gpu-1", {"gpusched.io/node": "gpu-2"}), "gpu-1",
     "gpusched.io/gpus of its pods"),
    ("pods", pod("gpu-1", {}), pod("gpu-1", {}, {"gpusched.io/team": "vision"}), "gpu-1", "may not change labels"),
]


@pytest.mark.parametrize(("resource", "old", "new", "token_node", "refused"), AGENT_CASES, ids=[
    "own-node", "other-node", "foreign-annotation", "removes-foreign-annotation", "node-label", "no-node-in-token",
    "own-pod-record", "pod-elsewhere", "pod-node-annotation", "pod-label"])
def test_the_agent_changes_only_gpuscheds_annotations_on_its_own_node(base, resource, old, new, token_node, refused):
    policy = find(base, "ValidatingAdmissionPolicy", "gpusched-agent-scope")
    verdict = admit(policy, request(user=AGENT_SA, resource=resource, obj=new, old=old, node=token_node))
    assert verdict.matched
    assert (verdict.allowed, refused in verdict.message) == (not refused, True), verdict


def test_the_agent_scope_policy_leaves_everyone_else_alone(base):
    policy = find(base, "ValidatingAdmissionPolicy", "gpusched-agent-scope")
    verdict = admit(policy, request(user="system:node:gpu-2", resource="nodes", obj=node("gpu-2", {"x": "1"}),
                                    old=node("gpu-2", {}), groups=["system:nodes"]))
    assert not verdict.matched and verdict.allowed


# ---------------------------------------------------------------------------------- pod records
RECORD = {"gpusched.io/gpus": "GPU-a", "gpusched.io/node": "gpu-1", "gpusched.io/gpu-milli": "500",
          "gpusched.io/gang-size": "4", "example.com/x": "1"}


def changed(**annotations) -> dict:
    out = copy.deepcopy(RECORD)
    for key, value in annotations.items():
        key = "gpusched.io/" + key.replace("_", "-") if not key.startswith("example") else "example.com/x"
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("user", "groups", "after", "allowed"), [
    ("alice", ["system:authenticated"], changed(gpus="GPU-a,GPU-b,GPU-c"), False),
    ("alice", ["system:authenticated"], changed(node=None), False),
    ("alice", ["system:authenticated"], changed(mps_thread_pct="100"), False),
    ("alice", None, changed(borrowed="false"), False),
    ("alice", ["system:authenticated"], changed(gang_size="8", gpu_model="A100*"), True),
    ("alice", ["system:authenticated"], changed(example="2"), True),
    ("system:serviceaccount:kube-system:generic-garbage-collector", ["system:serviceaccounts"], RECORD, True),
    (SCHEDULER_SA, ["system:serviceaccounts"], changed(gpus="GPU-b", borrowed="true"), True),
    (AGENT_SA, ["system:serviceaccounts"], changed(gpus="GPU-b"), True),
    ("admin", ["system:masters", "system:authenticated"], changed(gpus="GPU-b"), True),
], ids=["user-rewrites-gpus", "user-drops-node", "user-adds-mps", "user-without-groups", "user-annotations",
        "other-annotations", "unrelated-update", "the-binder", "the-agent", "cluster-admin"])
def test_only_gpusched_changes_a_pods_record(base, user, groups, after, allowed):
    policy = find(base, "ValidatingAdmissionPolicy", "gpusched-pod-records")
    old = pod("gpu-1", dict(RECORD))
    new = pod("gpu-1", after)
    verdict = admit(policy, request(user=user, resource="pods", obj=new, old=old, groups=groups))
    assert verdict.allowed is allowed, verdict
    if not allowed:
        assert "written by gpusched only" in verdict.message


def test_the_record_policy_knows_gpuscheds_accounts_and_the_users_annotations(base):
    policy = find(base, "ValidatingAdmissionPolicy", "gpusched-pod-records")
    accounts = policy["spec"]["matchConditions"][0]["expression"]
    assert f"'{service_account(base, 'gpu-scheduler')}'" in accounts and f"'{AGENT_SA}'" in accounts
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    listed = {k.strip().strip("'") for k in variables["userKeys"].strip().strip("[]").split(",")}
    assert listed == set(c.USER_POD_ANNOTATIONS)
    assert find(base, "ValidatingAdmissionPolicyBinding", "gpusched-pod-records")["spec"]["validationActions"] == [
        "Deny"]


# ------------------------------------------------------------------------------------- network
def policies_for(docs, workload) -> list[dict]:
    namespace = workload["metadata"]["namespace"]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == namespace
            and set(d["spec"]["podSelector"].get("matchLabels", {}).items()) <= set(labels.items())]


def open_ports(policies) -> dict[int, list]:
    """Port -> the `from` clauses that open it (an empty list: from anywhere)."""
    out: dict[int, list] = {}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                out.setdefault(port["port"], []).extend(rule.get("from", []))
    return out


def test_every_namespace_with_pods_denies_ingress_by_default(base):
    for namespace in {w["metadata"]["namespace"] for w in workloads(base)}:
        deny = next(d for d in base if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == namespace
                    and d["metadata"]["name"] == "default-deny-ingress")
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_scheduler_pods_take_the_webhook_from_anywhere_and_nothing_else_but_monitoring(base):
    deployment = find(base, "Deployment", "gpu-scheduler")
    ports = open_ports(policies_for(base, deployment))
    served = {p["containerPort"] for ct in deployment["spec"]["template"]["spec"]["containers"]
              for p in ct.get("ports", [])}
    assert set(ports) == served == {8443, 10259}
    assert ports[8443] == []  # the API server's address cannot be selected (docs/security.md)
    assert ports[10259] == MONITORING


def test_the_agents_metrics_are_for_monitoring_only(base):
    daemonset = find(base, "DaemonSet", "gpusched-agent")
    ports = open_ports(policies_for(base, daemonset))
    assert ports == {9402: MONITORING}
