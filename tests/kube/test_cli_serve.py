"""`gpusched serve --kubeconfig` as a user runs it: one-line errors, and a real process on the fake API."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from scheduler.extender.tls import issue_webhook_certificate
from tests import processes
from tests.cli.test_cli import MIXED, ROOT, gpusched, one_line_error
from tests.kube.objects import node, pod


@pytest.mark.parametrize(("args", "fragments"), [
    (("serve", "--cluster", str(MIXED), "--in-cluster"), ["cannot be combined with --kubeconfig or --in-cluster"]),
    (("serve", "--kubeconfig", "k", "--in-cluster"), ["not both"]),
    (("serve", "--kubeconfig", "/nonexistent/kubeconfig"), ["cannot use /nonexistent/kubeconfig"]),
    (("serve", "--in-cluster", "--webhook-port", "8443"), ["only over HTTPS", "--tls-cert"]),
    (("serve", "--in-cluster", "--tls-cert", "c.pem"), ["--tls-cert and --tls-key together"]),
    (("serve", "--in-cluster", "--webhook-port", "8443", "--tls-cert", "c", "--tls-key", "k"), ["c: no such file"]),
    (("serve", "--in-cluster", "--state-file", "s"), ["pods' annotations are the record"]),
    (("serve", "--in-cluster", "--agent-staleness", "0"), ["--agent-staleness must be positive"]),
], ids=["cluster-and-live", "both-live", "bad-kubeconfig", "webhook-without-tls", "cert-without-key",
        "missing-cert", "state-file-live", "staleness"])
def test_live_argument_errors(args, fragments):
    result = gpusched(*args)
    assert result.returncode == 2
    one_line_error(result, *fragments)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# SIGTERM is what the kubelet sends a terminating pod; SIGINT a person at a terminal
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_a_live_cluster_as_a_process(kube_api, tmp_path, stop):
    kube_api.put(node("a", gpus=2))
    kube_api.put(pod("other", gpus=1, scheduler="default-scheduler", node_name="a"))
    issued = issue_webhook_certificate(service="gpusched", namespace="gpu-system", extra_names=("127.0.0.1",))
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    verbs, public = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "serve", "--kubeconfig", str(kube_api.kubeconfig(tmp_path / "kc")),
         "--port", str(verbs), "--webhook-host", "127.0.0.1", "--webhook-port", str(public),
         "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
         "--identity", "test-replica", "--lease-namespace", "default"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    context = ssl.create_default_context(cadata=issued.ca_pem.decode())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{public}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{verbs}/state", timeout=5) as r:
            state = json.load(r)
        assert state["kube"]["boundByOtherSchedulers"] == 1
        assert [g["pods"] for g in state["nodes"][0]["gpus"]] == [["ml/other"], []]
        deadline = time.monotonic() + 10
        while (kube_api.get("leases", "default", "gpu-extender") or {}).get("spec", {}).get("holderIdentity") != \
                "test-replica":
            assert time.monotonic() < deadline, "the replica never took the lease"
            time.sleep(0.1)
    finally:
        code = processes.stop(process, stop)
    assert code == 0, process.communicate()[1]  # shut down in order, not ended by the signal
    lease = kube_api.get("leases", "default", "gpu-extender")
    assert lease["spec"]["holderIdentity"] == ""  # given up on the way out
