"""Install gpusched from `deploy/` onto the loopback control plane, as docs/operations.md says.

Only what cannot work on loopback changes:
- the webhook is registered by `url: https://127.0.0.1:PORT/mutate` (no Service can be reached)
  with the CA of a certificate made by `gpusched webhook-cert`'s own function;
- the extender's `urlPrefix` names the port the test's extender listens on;
- the sidecar runs as a process with a kubeconfig holding the `gpu-scheduler` ServiceAccount's
  token instead of `--in-cluster`; every other argument is the Deployment's own.
Everything else (Namespaces, RBAC, ConfigMaps, Service, Deployment, DaemonSet, NetworkPolicies) is
applied with `kubectl apply` as rendered by `kubectl kustomize deploy/base`, so the API server
validates it, except kinds this API server does not serve: the test control plane is v1.28, which
lacks `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicy (GA in 1.30, the version
docs/operations.md asks for). `install` returns what it left out, so a test can say so.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ROOT, ControlPlane

NAMESPACE = "gpu-system"
SCHEDULER_NAME = "gpu-scheduler"


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]

    def one(self, kind: str, name_prefix: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)]
        assert len(found) == 1, f"expected one {kind} {name_prefix}* in deploy/, found {len(found)}"
        return found[0]

    @property
    def scheduler_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.one("ConfigMap", "gpu-scheduler-config")["data"]["config.yaml"])

    @property
    def gpusched_config(self) -> str:
        return self.one("ConfigMap", "gpusched-config")["data"]["config.yaml"]

    @property
    def sidecar_args(self) -> list[str]:
        pod = self.one("Deployment", "gpu-scheduler")["spec"]["template"]["spec"]
        (sidecar,) = [c for c in pod["containers"] if c["name"] == "gpusched"]
        return list(sidecar["args"])


def render(plane: ControlPlane, kustomization: str = "deploy/base") -> Rendered:
    text = plane.kubectl("kustomize", str(ROOT / kustomization)).stdout
    return Rendered([o for o in yaml.safe_load_all(text) if o])


def install(plane: ControlPlane, rendered: Rendered, *, webhook_port: int, ca_pem: bytes) -> list[str]:
    served = _served_kinds(plane)
    objects = [_for_loopback(o, webhook_port=webhook_port, ca_pem=ca_pem) for o in rendered.objects]
    applied = [o for o in objects if (o["apiVersion"], o["kind"]) in served]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(applied))
    return [f"{o['kind']}/{o['metadata']['name']} ({o['apiVersion']})" for o in objects if o not in applied]


def _served_kinds(plane: ControlPlane) -> set[tuple[str, str]]:
    lines = plane.kubectl("api-resources", "--no-headers", "-o", "wide").stdout.splitlines()
    served = set()
    for line in lines:
        fields = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...: find the column after the group/version
        for i, value in enumerate(fields):
            if value in ("true", "false") and i >= 1:
                served.add((fields[i - 1], fields[i + 1]))
                break
    return served


def _for_loopback(obj: dict[str, Any], *, webhook_port: int, ca_pem: bytes) -> dict[str, Any]:
    if obj["kind"] != "MutatingWebhookConfiguration":
        return obj
    for hook in obj["webhooks"]:
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{webhook_port}/mutate",
                                "caBundle": base64.b64encode(ca_pem).decode()}
    return obj


def scheduler_config(rendered: Rendered, *, extender_port: int, path: Path) -> Path:
    """The shipped KubeSchedulerConfiguration, its extender at this test's port."""
    config = rendered.scheduler_config
    (extender,) = config["extenders"]
    extender["urlPrefix"] = f"http://127.0.0.1:{extender_port}"
    path.write_text(yaml.safe_dump(config))
    return path


def sidecar_command(rendered: Rendered, *, kubeconfig: Path, identity: str, port: int, webhook_port: int,
                    tls_cert: Path, tls_key: Path, config: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The Deployment's sidecar arguments, with the loopback stand-ins for what a pod would have."""
    replace = {"--in-cluster": f"--kubeconfig={kubeconfig}", "--port": f"--port={port}",
               "--webhook-port": f"--webhook-port={webhook_port}", "--tls-cert": f"--tls-cert={tls_cert}",
               "--tls-key": f"--tls-key={tls_key}", "--config": f"--config={config}"}
    args = []
    for arg in rendered.sidecar_args:
        flag = arg.split("=", 1)[0]
        arg = replace.get(flag, arg)
        args.append(arg.replace("$(POD_NAMESPACE)", NAMESPACE).replace("$(POD_NAME)", identity))
    return [*args, "--webhook-host=127.0.0.1", *extra]
