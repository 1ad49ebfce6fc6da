"""deploy/ renders offline, validates against the Kubernetes schemas, and agrees with the code.

Core kinds are validated strictly with kubernetes-validate (its bundled OpenAPI schemas) for the
oldest Kubernetes the manifests support (1.30: webhook matchConditions) and the newest it ships.
Custom resources (cert-manager, Prometheus Operator, scheduler-plugins, Kubeflow) have no schema
there: their documents are checked structurally, field by field, below. A kind in neither list
fails the test, so nothing goes unchecked unnoticed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import orjson
import pytest
import yaml

from tests.deploy.render import DEPLOY, find, render

KUSTOMIZATIONS = ["base", "overlays/example", "examples"]
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
CUSTOM_KINDS = {
    ("cert-manager.io/v1", "Issuer"): ("spec",),
    ("cert-manager.io/v1", "Certificate"): ("spec", "secretName", "dnsNames", "issuerRef"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("spec", "selector", "endpoints"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("spec", "groups"),
    ("scheduling.x-k8s.io/v1alpha1", "PodGroup"): ("spec", "minMember"),
    ("kubeflow.org/v1", "PyTorchJob"): ("spec", "pytorchReplicaSpecs"),
}


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request):
    return request.param, render(DEPLOY / request.param)


def test_every_document_validates(rendered):
    where, docs = rendered
    assert docs, f"{where} rendered nothing"
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CUSTOM_KINDS:
            _check_custom(doc, CUSTOM_KINDS[key])
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} against {version}: {path}: {e.message}")


def _check_custom(doc, fields):
    assert doc["metadata"].get("name"), doc
    spec = doc["spec"]
    for field in fields[1:]:
        assert spec.get(field), f"{doc['kind']}/{doc['metadata']['name']}: spec.{field} is missing"


# ------------------------------------------------------------------------ the scheduler configuration
KNOWN_TOP = {"apiVersion", "kind", "clientConnection", "leaderElection", "profiles", "extenders", "parallelism",
             "percentageOfNodesToScore", "podInitialBackoffSeconds", "podMaxBackoffSeconds",
             "debuggingConfiguration", "featureGates", "delayCacheUntilActive"}
KNOWN_EXTENDER = {"urlPrefix", "filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb", "weight", "enableHTTPS",
                  "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources", "ignorable"}
KNOWN_LEADER = {"leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock", "resourceName",
                "resourceNamespace"}


@pytest.fixture(scope="module")
def base():
    return render(DEPLOY / "base")


@pytest.fixture(scope="module")
def scheduler_config(base):
    config_map = next(d for d in base if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gpu-scheduler-config"))
    return yaml.safe_load(config_map["data"]["config.yaml"])


def sidecar_args(base) -> dict[str, str]:
    deployment = find(base, "Deployment", "gpu-scheduler")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gpusched")
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)


def test_scheduler_configuration_is_strictly_decodable(scheduler_config):
    # kube-scheduler decodes its config strictly: an unknown or misspelt field stops it at start
    assert scheduler_config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert set(scheduler_config) <= KNOWN_TOP
    assert set(scheduler_config["leaderElection"]) <= KNOWN_LEADER
    for extender in scheduler_config["extenders"]:
        assert set(extender) <= KNOWN_EXTENDER
        for resource in extender["managedResources"]:
            assert set(resource) == {"name", "ignoredByScheduler"}


def test_the_extender_is_configured_as_the_reference_says(scheduler_config, base):
    [extender] = scheduler_config["extenders"]
    args = sidecar_args(base)
    assert extender["nodeCacheCapable"] is True and extender["ignorable"] is False
    assert extender["bindVerb"] == "bind" and extender["filterVerb"] == "filter"
    assert extender["weight"] > 0
    assert extender["urlPrefix"] == f"http://127.0.0.1:{args['port']}" and args["host"] == "127.0.0.1"
    assert {r["name"]: r["ignoredByScheduler"] for r in extender["managedResources"]} == {
        "nvidia.com/gpu": False, "gpusched.io/gpu-milli": True, "gpusched.io/gpu-memory": True}
    # the binder gives up before kube-scheduler does
    from scheduler.kube.binder import BinderSettings
    assert BinderSettings().deadline_s < float(extender["httpTimeout"].removesuffix("s"))
    [profile] = scheduler_config["profiles"]
    assert profile["schedulerName"] == args["scheduler-name"] == "gpu-scheduler"
    assert profile["percentageOfNodesToScore"] == 100
    assert scheduler_config["leaderElection"]["resourceName"] not in ("kube-scheduler", args["lease-name"])


def test_webhook_selects_this_schedulers_pods_and_reaches_the_sidecar(base):
    args = sidecar_args(base)
    hook = find(base, "MutatingWebhookConfiguration", "gpusched")["webhooks"][0]
    assert f"'{args['scheduler-name']}'" in hook["matchConditions"][0]["expression"]
    service = find(base, "Service", "gpusched")
    assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
    port = next(p for p in service["spec"]["ports"] if p["port"] == hook["clientConfig"]["service"]["port"])
    deployment = find(base, "Deployment", "gpu-scheduler")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gpusched")
    assert {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]] == int(args["webhook-port"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert args["tls-cert"].startswith(mount["mountPath"])
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    # new pods, and ephemeral containers added to running ones (kubectl debug): both get the hand-off
    ops = {(resource, op) for rule in hook["rules"] for resource in rule["resources"] for op in rule["operations"]}
    assert {("pods", "CREATE"), ("pods/ephemeralcontainers", "UPDATE")} <= ops
    assert deployment["spec"]["replicas"] == 2


# ------------------------------------------------------------------------------------------ RBAC
def test_rbac_grants_exactly_what_the_adapter_calls(base):
    from scheduler.kube.permissions import EXTENDER_PERMISSIONS
    role = find(base, "ClusterRole", "gpusched-extender")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == EXTENDER_PERMISSIONS


def test_no_wildcards_and_the_auth_reader_binding_lives_in_kube_system(base):
    for doc in base:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc["metadata"]["name"]
    assert find(base, "RoleBinding", "gpu-scheduler-auth-reader")["metadata"]["namespace"] == "kube-system"
    leases = find(base, "Role", "gpu-scheduler-leases")
    names = {n for rule in leases["rules"] for n in rule.get("resourceNames", [])}
    assert names == {"gpu-scheduler", sidecar_args(base)["lease-name"]}


# ---------------------------------------------------------------------------------- monitoring
def _metric_names() -> set[str]:
    from datetime import UTC, datetime

    from aiohttp import web
    from prometheus_client import generate_latest

    from scheduler.core.engine import Engine
    from scheduler.core.model import Gpu, Node
    from scheduler.extender.service import ExtenderService
    from scheduler.extender.webhook import WebhookSettings, add_webhook_routes
    from scheduler.kube.cache import ClusterCache
    from scheduler.kube.metrics import KubeMetrics
    service = ExtenderService(Engine([Node("n", 1000, 1024, gpus=(Gpu(0, "GPU-0", "A100", 81920),))]))
    cache = ClusterCache(service.engine, clock=lambda: datetime.now(UTC))
    cache.replace("resourcequotas", [{"metadata": {"name": "q", "namespace": "n"},
                                      "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}])
    metrics = KubeMetrics(service.metrics.registry, cache, synced=lambda: True, leader=lambda: True,
                          clock=lambda: datetime.now(UTC))
    metrics.api_call("x", 200)
    metrics.watch_restart("pods", "dropped")
    metrics.evictions.labels("evicted").inc()
    service.metrics.bind_failures.labels("binder").inc()
    service.metrics.rejections.labels("x").inc()
    service.metrics.latency.labels("filter").observe(0.001)
    add_webhook_routes(web.Application(), settings=WebhookSettings(), registry=service.metrics.registry)
    names = set()
    for line in generate_latest(service.metrics.registry).decode().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def _referenced(expr: str) -> set[str]:
    import re
    return {m for m in re.findall(r"\b(gpusched_[a-z_]+)", expr)}


@pytest.fixture(scope="module")
def example():
    return render(DEPLOY / "overlays" / "example")


def test_alerts_and_dashboard_use_only_metrics_that_exist(example):
    names = _metric_names()
    rule = find(example, "PrometheusRule", "gpusched")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"GpuschedGPUsNearlyFull", "GpuschedExtenderSlow", "GpuschedAgentStale", "GpuschedQuotaExhausted"} <= alerts
    dashboard_map = find(example, "ConfigMap", "gpusched-grafana-dashboard")
    dashboard = orjson.loads(dashboard_map["data"]["gpusched.json"])
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        unknown = _referenced(expr) - names
        assert not unknown, f"{expr!r} uses unknown metrics {unknown}"


# ------------------------------------------------------------------------ self-managed certificate
def test_self_managed_certificate_becomes_the_secret_and_the_ca_bundle(tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    certs = copy / "components" / "self-managed-cert" / "certs"
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "webhook-cert", "--out", str(certs)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    overlay = copy / "overlays" / "self-managed"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\n"
        "components: [../../components/self-managed-cert]\n")
    docs = render(overlay)
    secret = find(docs, "Secret", "gpusched-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["namespace"] == "gpu-system"
    ca = (certs / "ca.crt").read_bytes()
    hook = find(docs, "MutatingWebhookConfiguration", "gpusched")["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_the_certificate_directory_is_ignored_by_git():
    ignored = Path(DEPLOY.parent / ".gitignore").read_text()
    assert "deploy/components/self-managed-cert/certs/" in ignored
