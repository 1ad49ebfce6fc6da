"""`gpusched agent` as an operator runs it: real processes, stdout JSON, one-line errors, exit codes."""

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
import yaml

from scheduler.core.model import Sharing
from scheduler.core.nodeinfo import gpus_from_list

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "fake-nvml"


def gpusched(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler.cli", "agent", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gpusched agent: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_dry_run_once_prints_the_dgx_annotation():
    result = gpusched("--fake-nvml", str(EXAMPLES / "dgx-a100.yaml"), "--dry-run", "--once")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    gpus = gpus_from_list(json.loads(result.stdout), where="stdout")
    assert len(gpus) == 8
    assert {g.model for g in gpus} == {"NVIDIA-A100-SXM4-80GB"}
    assert {g.memory_mib for g in gpus} == {81920}
    assert all(g.healthy and not g.mig_enabled and g.sharing is Sharing.EXCLUSIVE for g in gpus)
    for g in gpus:  # NVSwitch: all-to-all
        assert g.nvlink_peers == tuple(i for i in range(8) if i != g.index)


def test_dry_run_once_prints_the_t4_mps_annotation():
    result = gpusched("--fake-nvml", str(EXAMPLES / "t4-mps.yaml"), "--dry-run", "--once")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [(e["model"], e["memoryMiB"], e["sharing"]) for e in entries] == [("Tesla-T4", 15360, "mps")] * 2


def test_dry_run_can_be_told_the_sharing_strategy():
    result = gpusched("--fake-nvml", str(EXAMPLES / "dgx-a100.yaml"), "--dry-run", "--once",
                      "--sharing-strategy", "time-slicing")
    assert {e["sharing"] for e in json.loads(result.stdout)} == {"time-slicing"}


@pytest.mark.parametrize(("args", "fragments"), [
    pytest.param(("--fake-nvml", "missing.yaml", "--dry-run", "--once"), ["cannot read fake NVML file missing.yaml"],
                 id="missing-file"),
    pytest.param(("--dry-run", "--once", "--unhealthy-xids", "48,x"), ["--unhealthy-xids", "'x'"], id="bad-xids"),
    pytest.param(("--dry-run", "--once", "--interval", "60"), ["--heartbeat-interval (30s) must not be shorter"],
                 id="interval-above-heartbeat"),
    pytest.param(("--dry-run", "--once", "--interval", "0"), ["--interval must be positive"], id="zero-interval"),
    pytest.param(("--dry-run", "--once", "--xid-hold", "0"), ["--xid-hold must be positive"], id="never-back"),
    pytest.param(("--once",), ["--node is required"], id="no-node"),
    pytest.param(("--once", "--node", "n1", "--kubeconfig", "/nonexistent/kubeconfig"),
                 ["no usable Kubernetes configuration (/nonexistent/kubeconfig)"], id="bad-kubeconfig"),
    pytest.param(("--dry-run", "--once", "--sharing-strategy", "magic"), ["invalid choice: 'magic'"],
                 id="bad-strategy"),
])
def test_mistakes_are_one_line_and_exit_2(args, fragments):
    one_line_error(gpusched(*args, env={"NODE_NAME": ""}), *fragments)


def test_nvml_errors_with_once_are_one_line_and_exit_2(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "t4-mps.yaml").read_text())
    spec["openError"] = "the NVIDIA driver is installed but not loaded (NVML: Driver Not Loaded)"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(spec))
    one_line_error(gpusched("--fake-nvml", str(broken), "--dry-run", "--once"), "Driver Not Loaded")


def _has_nvml() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_has_nvml(), reason="this machine has a working NVIDIA driver")
def test_without_a_driver_the_real_source_says_so_in_one_line():
    line = one_line_error(gpusched("--dry-run", "--once"))
    assert ("no NVIDIA driver on this node" in line or "not loaded" in line or "no NVIDIA GPU" in line), line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return response.read().decode()


def test_as_a_daemonset_it_keeps_retrying_with_the_error_in_the_log_and_a_metric(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "t4-mps.yaml").read_text())
    spec["openError"] = "no NVIDIA driver on this node (libnvidia-ml.so.1 not found)"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(spec))
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "agent", "--fake-nvml", str(broken),
                                "--dry-run", "--node", "gpu-1", "--metrics-port", str(port),
                                "--metrics-addr", "127.0.0.1"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        errors, deadline = 0.0, time.monotonic() + 20
        while time.monotonic() < deadline and errors < 2:
            time.sleep(0.3)
            try:
                text = _scrape(port)
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith('gpusched_node_agent_errors_total{node="gpu-1",reason="nvml-unavailable"}'):
                    errors = float(line.split()[-1])
        assert errors >= 2  # failed, backed off, failed again: still running
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=15)
    assert process.returncode == 0  # a TERM is a clean stop
    assert "no NVIDIA driver on this node (libnvidia-ml.so.1 not found); retrying in 1s" in err
    assert "Traceback" not in err
