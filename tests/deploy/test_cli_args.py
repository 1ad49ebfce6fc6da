"""The manifests call the CLI as it is: containers' args parse with the real argparse parsers, and
the files they name (the extender's --config, sockets, certificates) are where the pod mounts them.

A flag renamed or removed in `scheduler/cli/` fails here, not as a CrashLoopBackOff in a cluster.
Options are matched exactly (no argparse prefix abbreviations), as the manifests should spell them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import PurePosixPath

import pytest
import yaml

from scheduler.cli import agent, serve
from scheduler.configfile import load_config
from scheduler.core.quotas import QuotaUnit, TeamSource
from tests.deploy.render import DEPLOY, find, render

_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class ArgsRejected(Exception):
    pass


class _StrictParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ArgsRejected(message)


def parse(module, args: list[str]) -> argparse.Namespace:
    parser = _StrictParser(allow_abbrev=False)
    module.add_arguments(parser)
    return parser.parse_args(args)


@pytest.fixture(scope="module")
def base():
    return render(DEPLOY / "base")


@pytest.fixture(scope="module")
def example():
    return render(DEPLOY / "overlays" / "example")


def container(docs, kind: str, name: str, container_name: str) -> tuple[dict, dict]:
    """(pod spec, container) of a workload."""
    spec = find(docs, kind, name)["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == container_name)


def expanded(c: dict) -> list[str]:
    """The container's args with $(VAR) replaced, as the kubelet does; every VAR must be in its env."""
    env = {e["name"] for e in c.get("env", [])}
    out = []
    for arg in c["args"]:
        for name in _VARIABLE.findall(arg):
            assert name in env, f"container {c['name']}: {arg} names $({name}), which its env does not define"
        out.append(_VARIABLE.sub(lambda m: f"value-of-{m.group(1).lower()}", arg))
    return out


def mounted_volume(spec: dict, c: dict, path: str) -> dict:
    """The pod volume mounted at the deepest mount path above `path`."""
    mounts = [m for m in c.get("volumeMounts", []) if PurePosixPath(path).is_relative_to(m["mountPath"])]
    assert mounts, f"container {c['name']}: nothing is mounted above {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    return next(v for v in spec["volumes"] if v["name"] == mount["name"])


# ------------------------------------------------------------------------------ the agent DaemonSet
def test_agent_args_are_the_agent_commands_flags(base):
    spec, c = container(base, "DaemonSet", "gpusched-agent", "agent")
    command, *flags = expanded(c)
    assert command == "agent"
    args = parse(agent, flags)
    assert args.node == "value-of-node_name"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # metrics: the port the agent listens on is the container's and the one Prometheus scrapes
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    annotations = find(base, "DaemonSet", "gpusched-agent")["spec"]["template"]["metadata"]["annotations"]
    assert args.metrics_port == ports["metrics"] == int(annotations["prometheus.io/port"])
    # plain HTTP: on the pod's own IP (what Prometheus and the probe reach), never every interface
    assert args.metrics_addr == "value-of-pod_ip"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # the kubelet's pod-resources socket and the host's /proc are where the agent looks for them
    assert mounted_volume(spec, c, args.pod_resources_socket)["hostPath"]["path"] == str(
        PurePosixPath(args.pod_resources_socket).parent)
    assert args.proc_root == "/proc" and spec["hostPID"] is True
    assert not args.once and not args.dry_run and args.fake_nvml is None  # the real agent, for good


def test_the_agents_metrics_listen_on_loopback_unless_told_otherwise():
    assert parse(agent, ["--node=x"]).metrics_addr == "127.0.0.1"
    from scheduler.agent.exporter import serve
    assert serve.__kwdefaults__["addr"] == "127.0.0.1"


@pytest.mark.parametrize("args", [["--node=x", "--metrics-p=1"], ["--node=x", "--no-such-flag"]],
                         ids=["abbreviated", "unknown"])
def test_the_strict_parser_refuses_what_a_manifest_must_not_say(args):
    with pytest.raises(ArgsRejected):
        parse(agent, args)


# --------------------------------------------------------------------------- the extender sidecar
def test_sidecar_args_are_the_serve_commands_flags(base):
    spec, c = container(base, "Deployment", "gpu-scheduler", "gpusched")
    command, *flags = expanded(c)
    assert command == "serve"
    args = parse(serve, flags)
    assert args.in_cluster and not args.kubeconfig and not args.cluster and not args.state_file
    assert args.identity == "value-of-pod_name" and args.lease_namespace == "value-of-pod_namespace"
    for path in (args.tls_cert, args.tls_key):
        assert mounted_volume(spec, c, path)["secret"]["secretName"] == "gpusched-webhook-tls"


@pytest.mark.parametrize("where", ["base", "example"])
def test_the_sidecar_reads_its_config_from_the_config_map(where, base, example, tmp_path):
    docs = {"base": base, "example": example}[where]
    spec, c = container(docs, "Deployment", "gpu-scheduler", "gpusched")
    args = parse(serve, expanded(c)[1:])
    assert args.config, "the sidecar is not given --config"
    volume = mounted_volume(spec, c, args.config)
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    config_map = find(docs, "ConfigMap", volume["configMap"]["name"])  # the generated, hashed name
    assert config_map["metadata"]["name"].startswith("gpusched-config-")
    key = str(PurePosixPath(args.config).relative_to(mount["mountPath"]))
    file = tmp_path / "config.yaml"
    file.write_text(config_map["data"][key])
    gates = load_config(file)  # what `gpusched serve --config` does at start
    assert gates.quotas.unit is QuotaUnit.GPU and gates.gangs.default_timeout_s == 300
    assert gates.quotas.team_source is TeamSource.POD  # the DESIGN §3 contract, said out loud in base
    teams = {t.name: (t.guaranteed_milli, t.max_milli, t.weight) for t in gates.quotas.teams}
    if where == "base":
        assert teams == {}  # as shipped: nothing limited or reclaimed until teams are declared
    else:
        assert teams == {"vision": (16_000, 48_000, 2.0), "nlp": (32_000, None, 1.0)}


def test_the_commented_teams_in_the_base_config_are_the_example_overlays(tmp_path):
    text = (DEPLOY / "base" / "gpusched-config.yaml").read_text().splitlines()
    start = text.index("# teams:")
    block = [text[start]]
    for line in text[start + 1:]:
        if not line.startswith(("# -", "#  ")):
            break
        block.append(line)
    uncommented = yaml.safe_load("\n".join(line[2:] for line in block))
    example = yaml.safe_load((DEPLOY / "overlays" / "example" / "gpusched-config.yaml").read_text())
    assert uncommented["teams"] == example["teams"]
