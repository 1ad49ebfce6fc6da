"""The `gpusched` command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import processes
from tests.builders import pod

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "examples" / "clusters" / "mixed.yaml"


def gpusched(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "fragments"), [
    (("serve",), ["--cluster FILE, --kubeconfig PATH or --in-cluster is required"]),
    (("serve", "--cluster", "missing.yaml"), ["missing.yaml", "No such file"]),
    (("serve", "--bogus"), ["unrecognized arguments: --bogus"]),
    (("serve", "--cluster", str(MIXED), "--port", "99999"), ["not a TCP port"]),
    (("serve", "--cluster", str(MIXED), "--policy", "tetris"), ["invalid choice: 'tetris'"]),
    (("serve", "--cluster", str(MIXED), "--body-timeout", "0"), ["--body-timeout must be a positive number of seconds"]),
    (("serve", "--cluster", str(MIXED), "--idle-timeout", "nan"), ["--idle-timeout must be a positive number"]),
    (("explain", "--cluster", str(MIXED)), ["--pod"]),
    (("nonsense",), ["invalid choice"]),
], ids=["no cluster", "missing file", "unknown flag", "bad port", "bad policy", "bad body timeout", "bad idle timeout",
        "explain without pod", "no command"])
def test_argument_errors(args, fragments):
    one_line_error(gpusched(*args), *fragments)


@pytest.mark.parametrize(("content", "fragments"), [
    ("nodes: [", ["not valid YAML"]),
    ("nodes: []", ["'nodes' must be a non-empty list"]),
    ("nodes: [{name: a, cpuMilli: 1000, memoryMiB: -5}]", ["nodes[0] (a)", "'memoryMiB' must be a non-negative integer"]),
    ("nodes: [{name: a, cpuMilli: 1000, memoryMiB: 5, gpus: [{index: 0, uuid: u, model: m}]}]",
     ["nodes[0] (a).gpus[0]", "'memoryMiB' must be an integer"]),
    ("nodes: [{name: a, cpuMilli: 1, memoryMiB: 1, gpus: {count: 2, model: m, memoryMiB: 1, sharing: shared}}]",
     ["unknown sharing mode 'shared'"]),
    ("nodes: [{name: a, cpuMilli: 1, memoryMiB: 1}]\npods: [{namespace: x, name: y, node: b}]",
     ["pods[0]: node 'b' is not in 'nodes'"]),
], ids=["yaml", "empty", "negative", "gpu field", "sharing", "pod node"])
def test_cluster_file_errors_name_file_and_field(tmp_path, content, fragments):
    path = tmp_path / "cluster.yaml"
    path.write_text(content)
    one_line_error(gpusched("serve", "--cluster", str(path)), str(path), *fragments)


def test_explain_prints_every_node_and_why(tmp_path):
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(json.dumps(pod("train").gpus(4).models("H100*").build()))
    result = gpusched("explain", "--cluster", str(MIXED), "--pod", str(pod_file), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_node = {n["node"]: n for n in report["units"][0]["pods"][0]["nodes"]}
    assert by_node["h100-0"]["fits"] and by_node["h100-0"]["score"] == 10 and len(by_node["h100-0"]["gpus"]) == 4
    assert by_node["a100-0"]["reason"] == "GPU model not allowed by the pod" and by_node["a100-0"]["unresolvable"]
    assert by_node["cpu-0"]["reason"] == "node has no GPUs"
    table = gpusched("explain", "--cluster", str(MIXED), "--pod", str(pod_file))
    assert table.returncode == 0 and "h100-0" in table.stdout and "never" in table.stdout


def test_explain_reports_an_invalid_pod_in_one_line(tmp_path):
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(json.dumps(pod("bad").share(1500).build()))
    one_line_error(gpusched("explain", "--cluster", str(MIXED), "--pod", str(pod_file)),
                   "invalid GPU request", "between 1 and 999")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def start_serve(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "serve", "--port", str(port), *args],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1)
            return process, url
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not become ready")


def state_after_restart(state_file) -> dict:
    """The books a new `serve --cluster` reads back from `state_file` (its /state), the server stopped after."""
    process, url = start_serve("--cluster", str(MIXED), "--state-file", str(state_file))
    try:
        return http("GET", url + "/state")
    finally:
        process.terminate()
        process.wait()


def test_serve_survives_a_kill_with_its_state_file(tmp_path):
    state_file = tmp_path / "books.jsonl"
    process, url = start_serve("--cluster", str(MIXED), "--state-file", str(state_file))
    try:
        nodes = ["a100-0", "a100-1", "h100-0", "t4-0", "t4-1", "a10-0", "a10-1", "cpu-0"]
        for name, builder in [("a", pod("a").gpus(2)), ("b", pod("b").share(300, memory_mib=1024).mps()),
                              ("c", pod("c").gpus(8))]:
            built = builder.build()
            answer = http("POST", url + "/filter", {"Pod": built, "Nodes": None, "NodeNames": nodes})
            target = answer["NodeNames"][0]
            assert http("POST", url + "/bind", {"PodName": name, "PodNamespace": "ml",
                                                "PodUID": built["metadata"]["uid"], "Node": target}) == {"Error": ""}
        before = http("GET", url + "/state")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert state_after_restart(state_file) == before
    assert before["pods"] == 4  # the cluster file's notebook plus the three bound here


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_in_order_on_a_stop_signal_and_keeps_its_books(tmp_path, stop):
    state_file = tmp_path / "books.jsonl"
    process, url = start_serve("--cluster", str(MIXED), "--state-file", str(state_file))
    try:
        built = pod("a").gpus(2).build()
        answer = http("POST", url + "/filter", {"Pod": built, "Nodes": None, "NodeNames": ["a100-0", "h100-0"]})
        assert http("POST", url + "/bind", {"PodName": "a", "PodNamespace": "ml", "PodUID": built["metadata"]["uid"],
                                            "Node": answer["NodeNames"][0]}) == {"Error": ""}
        before = http("GET", url + "/state")
    finally:
        code = processes.stop(process, stop)
    # 0: it closed the listener and the state file itself; a process ended by SIGTERM reads -15
    assert code == 0, process.stderr.read().decode()
    assert state_after_restart(state_file) == before
