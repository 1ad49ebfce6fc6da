"""Node lists of the public traces, as `model.Node`s: openb (FGD), Alibaba PAI 2020, spot 2026.

The format is recognised from the first line:

| format  | file                              | columns                                             |
|---------|-----------------------------------|-----------------------------------------------------|
| openb   | openb_node_list_*.csv             | sn, cpu_milli, memory_mib, gpu, model (header line) |
| pai2020 | pai_machine_spec.csv              | machine, gpu_type, cap_cpu (cores), cap_mem (GB), cap_gpu (no header line) |
| spot2026| node_info_df.csv                  | gpu_model, gpu_capacity_num, cpu_num (vCPU), node_name (header line) |

What the traces do not say is filled in here, once: each GPU's memory (by model, `GPU_MEMORY_MIB`)
and, for spot 2026, node memory (`SPOT_MEMORY_MIB_PER_VCPU`). GPUs get stable synthetic UUIDs
(`<node>/gpu-<i>`) and one sharing mode for the whole list (openb's cluster shares GPUs, so the
FGD protocol uses time-slicing; the time-driven replay may ask for MPS).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scheduler.core.model import MAX_GPUS_PER_NODE, Gpu, Node, Sharing
from simulator.traces.csvrows import TraceError, integer, read_rows

GPU_MEMORY_MIB: dict[str, int] = {
    # The FGD artifact's table (pkg/type/open-gpu-share/utils/const.go, MapGpuTypeMemoryMiB); G1-G3 are
    # Alibaba's undisclosed codes, with the artifact's own guesses.
    "P4": 7611, "T4": 15109, "V100M16": 16160, "P100": 16280, "A10": 22731, "V100M32": 32510,
    "A100": 81251, "G1": 10000, "G2": 20000, "G3": 30000,
    # PAI 2020: "V100" is the 16 GB part (its 32 GB sibling is listed as V100M32); MISC is unnamed.
    "V100": 16160, "MISC": 16384,
    # Spot 2026: the 80 GB parts by name; GPU-series-1/2 are undisclosed (assumed 24 GiB, an A10-class card).
    "A100-SXM4-80GB": 81920, "A800-SXM4-80GB": 81920, "H800": 81920,
    "GPU-series-1": 24576, "GPU-series-2": 24576,
}
DEFAULT_GPU_MEMORY_MIB = 16384
SPOT_MEMORY_MIB_PER_VCPU = 8 * 1024
"""Spot 2026 lists no memory; 8 GiB per vCPU is the PAI 2020 P100 nodes' ratio (512 GB / 64 cores)."""

OPENB_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
PAI_COLUMNS = ("machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu")
SPOT_COLUMNS = ("gpu_model", "gpu_capacity_num", "cpu_num", "node_name")


def load_nodes(path: str | Path, *, sharing: Sharing = Sharing.TIME_SLICING, gpu_only: bool = False) -> list[Node]:
    """Every node of a node list (GPU nodes only with `gpu_only`), in file order."""
    path = Path(path)
    reader = _reader_for(path)
    nodes = reader(path, sharing)
    if gpu_only:
        nodes = [n for n in nodes if n.gpus]
    if not nodes:
        raise TraceError(f"{path}: no {'GPU ' if gpu_only else ''}nodes")
    names = set()
    for node in nodes:
        if node.name in names:
            raise TraceError(f"{path}: node {node.name} appears twice")
        names.add(node.name)
    return nodes


def _reader_for(path: Path) -> Callable[[Path, Sharing], list[Node]]:
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline().strip()
    except OSError as e:
        raise TraceError(f"{path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}:1: not a text file") from None
    columns = [c.strip() for c in first.split(",")]
    if set(OPENB_COLUMNS) <= set(columns):
        return _openb
    if set(SPOT_COLUMNS) <= set(columns):
        return _spot
    if len(columns) == len(PAI_COLUMNS) and columns[2].isdigit():
        return _pai
    raise TraceError(f"{path}:1: not a known node list (expected the columns of openb {','.join(OPENB_COLUMNS)}, "
                     f"spot 2026 {','.join(SPOT_COLUMNS)}, or a PAI 2020 machine table)")


def _openb(path: Path, sharing: Sharing) -> list[Node]:
    nodes = []
    for line, row in read_rows(path, required=OPENB_COLUMNS):
        where = f"{path}:{line}"
        nodes.append(_node(row["sn"].strip(), integer(row, "cpu_milli", where, low=1),
                           integer(row, "memory_mib", where, low=1),
                           integer(row, "gpu", where, high=MAX_GPUS_PER_NODE), row["model"].strip(), sharing, where))
    return nodes


def _pai(path: Path, sharing: Sharing) -> list[Node]:
    nodes = []
    for line, row in read_rows(path, required=PAI_COLUMNS, header=PAI_COLUMNS):
        where = f"{path}:{line}"
        gpus = integer(row, "cap_gpu", where, high=MAX_GPUS_PER_NODE)
        model = row["gpu_type"].strip() if gpus else ""
        nodes.append(_node(row["machine"].strip(), integer(row, "cap_cpu", where, low=1) * 1000,
                           integer(row, "cap_mem", where, low=1) * 1024, gpus, model, sharing, where))
    return nodes


def _spot(path: Path, sharing: Sharing) -> list[Node]:
    nodes = []
    for line, row in read_rows(path, required=SPOT_COLUMNS):
        where = f"{path}:{line}"
        vcpus = integer(row, "cpu_num", where, low=1)
        nodes.append(_node(f"spot-node-{row['node_name'].strip()}", vcpus * 1000, vcpus * SPOT_MEMORY_MIB_PER_VCPU,
                           integer(row, "gpu_capacity_num", where, high=MAX_GPUS_PER_NODE),
                           row["gpu_model"].strip(), sharing, where))
    return nodes


def _node(name: str, cpu_milli: int, memory_mib: int, gpus: int, model: str, sharing: Sharing, where: str) -> Node:
    if not name:
        raise TraceError(f"{where}: empty node name")
    if gpus and not model:
        raise TraceError(f"{where}: node {name} has {gpus} GPUs but no model")
    memory = GPU_MEMORY_MIB.get(model, DEFAULT_GPU_MEMORY_MIB)
    return Node(name=name, cpu_milli=cpu_milli, memory_mib=memory_mib,
                gpus=tuple(Gpu(index=i, uuid=f"{name}/gpu-{i}", model=model, memory_mib=memory, sharing=sharing)
                           for i in range(gpus)),
                labels={"nvidia.com/gpu.product": model} if gpus else {})
