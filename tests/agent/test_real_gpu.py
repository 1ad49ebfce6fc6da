"""On a real NVIDIA GPU: the agent's inventory, field by field, against nvidia-smi.

    nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv

Skips (saying why) where there is no nvidia-smi or NVML cannot start: CI has no GPU. Run it on
a GPU node with `.venv/bin/python -m pytest tests/agent/test_real_gpu.py -v`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.agent.inventory import gfd_product

ROOT = Path(__file__).resolve().parents[2]


def _nvml_problem() -> str:
    """Why the real NVML cannot be used here, or "" when it can."""
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi on PATH: no NVIDIA driver on this machine"
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return f"NVML cannot start here: {e}"
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return "NVML sees no GPU"
    finally:
        pynvml.nvmlShutdown()
    return ""


pytestmark = pytest.mark.skipif(bool(problem := _nvml_problem()), reason=problem or "n/a")


def nvidia_smi() -> list[dict[str, str]]:
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name,memory.total", "--format=csv"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = list(csv.reader(io.StringIO(out), skipinitialspace=True))
    header = [h.strip() for h in rows[0]]  # index, uuid, name, memory.total [MiB]
    return [dict(zip(header, (v.strip() for v in row), strict=True)) for row in rows[1:] if row]


def agent_inventory() -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "agent", "--dry-run", "--once"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inventory_matches_nvidia_smi_field_by_field():
    smi = nvidia_smi()
    agent = agent_inventory()
    assert len(agent) == len(smi), f"agent sees {len(agent)} GPUs, nvidia-smi {len(smi)}"
    memory_column = next(k for k in smi[0] if k.startswith("memory.total"))
    for row, entry in zip(smi, agent, strict=True):
        where = f"GPU {row['index']}"
        assert entry["index"] == int(row["index"]), where
        assert entry["uuid"] == row["uuid"], where
        assert entry["model"] == gfd_product(row["name"]), where
        assert entry["model"] == row["name"].replace(" ", "-"), where  # GFD's nvidia.com/gpu.product form
        assert entry["memoryMiB"] == int(row[memory_column].split()[0]), where  # "81920 MiB"


def test_a_real_pass_reads_health_and_telemetry_without_error():
    from scheduler.agent.nvml_source import PynvmlSource
    from scheduler.agent.readings import GpuLostEvent, XidEvent

    source = PynvmlSource()
    source.open()
    try:
        reading = source.read()
        assert reading.driver_version and reading.cuda_version.count(".") == 1
        for gpu in reading.gpus:
            assert not gpu.lost
            assert gpu.uuid.startswith("GPU-")
            assert gpu.telemetry.memory_used_mib is not None
        # Waiting on the real event set works; anything it returns is one of our event types.
        assert all(isinstance(e, XidEvent | GpuLostEvent) for e in source.wait_events(0.1))
    finally:
        source.close()
