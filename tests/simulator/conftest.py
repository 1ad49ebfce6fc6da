"""Fixtures for the simulator's tests: where the public traces are, and small clusters and pod lists."""

from __future__ import annotations

from pathlib import Path

import pytest

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces"
OPENB = TRACES / "alibaba-gpu-v2023" / "csv"


def openb(name: str) -> Path:
    """A file of the openb trace, or skip: the traces live outside the repository (../shared/traces)."""
    path = OPENB / name
    if not path.is_file():
        pytest.skip(f"needs the public traces in ../shared/traces ({path.name} not found)")
    return path


NODE_CSV = """sn,cpu_milli,memory_mib,gpu,model
n-a,96000,393216,8,G2
n-b,96000,393216,8,G2
n-c,104000,524288,2,T4
n-d,64000,262144,2,P100
n-e,32000,131072,4,V100M16
"""

POD_CSV_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
POD_ROWS = [
    # name, cpu, mem, gpus, milli, spec
    ("p-00", 4000, 16384, 1, 1000, ""),
    ("p-01", 6000, 12288, 1, 460, ""),
    ("p-02", 8000, 30000, 1, 500, ""),
    ("p-03", 2000, 8000, 0, 0, ""),
    ("p-04", 16000, 65536, 2, 1000, ""),
    ("p-05", 4000, 16384, 1, 1000, "T4"),
    ("p-06", 3000, 5600, 1, 250, ""),
    ("p-07", 32000, 131072, 8, 1000, ""),
    ("p-08", 4000, 16384, 1, 1000, "V100M16|V100M32"),
    ("p-09", 6000, 12288, 1, 460, ""),
    ("p-10", 2000, 8000, 0, 0, ""),
    ("p-11", 12000, 49152, 4, 1000, ""),
    ("p-12", 3000, 5600, 1, 810, ""),
    ("p-13", 4000, 16384, 1, 1000, "P100"),
    ("p-14", 6000, 12288, 1, 460, ""),
]


def pod_csv(rows=POD_ROWS) -> str:
    return POD_CSV_HEADER + "".join(f"{n},{c},{m},{g},{k},{s},LS,Running,0,1,0\n" for n, c, m, g, k, s in rows)


@pytest.fixture
def small_trace(tmp_path: Path) -> tuple[Path, Path]:
    """(node list, pod list) of a five-node cluster (24 GPUs) and 15 pods, in openb format."""
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(NODE_CSV)
    pods = tmp_path / "openb_pod_list_small.csv"
    pods.write_text(pod_csv())
    return nodes, pods
