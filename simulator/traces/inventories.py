"""Cluster shapes other than openb's, for asking whether a policy tuned on openb holds elsewhere.

Each function returns GPU nodes (`model.Node`) with about openb's GPU capacity (6,212 GPUs), so that
openb's pod lists, inflated by the FGD protocol to 130 % of capacity, load them as much as they load
openb. What changes is what a policy could have been tuned to: the node shapes (GPUs and CPU per
node), the sizes of the GPU model pools, and how scarce CPU is per GPU.

Rules every derivation keeps:
- a trace is read by path from the public traces folder (`../shared/traces`), never copied;
- node shapes keep their proportions when scaled (`scaled`: each shape's count × openb GPUs / trace
  GPUs, rounded by largest remainder), so the derivation has no randomness of its own;
- pods name openb's models (`gpu_spec`, e.g. `T4`, `V100M16|V100M32`), so a foreign inventory's
  pools are renamed after openb's pools of the same rank by size (`named_like`): the trace's largest
  pool is called G2, its second T4, and so on. A pod tied to a model then meets a pool playing the
  part its model played in openb, at another size. Pools beyond openb's seven keep their own names.
- a perturbation of openb changes one thing and says which; one that draws (the model shuffle)
  takes a seed and is a pure function of it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from scheduler.core.model import Gpu, Node, Sharing
from simulator.traces.nodes import DEFAULT_GPU_MEMORY_MIB, GPU_MEMORY_MIB, load_nodes

OPENB_NODES = Path("alibaba-gpu-v2023/csv/openb_node_list_gpu_node.csv")
PAI_MACHINES = Path("alibaba-pai-v2020/pai_machine_spec.csv")
SPOT_NODES = Path("alibaba-spot-gpu-v2026/node_info_df.csv")
HELIOS_CLUSTERS = Path("helios/helios_cluster_summary.csv")
TRACE_FILES = (OPENB_NODES, PAI_MACHINES, SPOT_NODES, HELIOS_CLUSTERS)
"""Every trace file an inventory below reads, relative to the traces folder."""

HELIOS_NODE_GPUS = 8
HELIOS_NODE_CPU_MILLI = 96_000
"""The Helios summary gives GPUs per cluster only. Its clusters are built from 8-GPU servers; the CPU
per server is not in the snapshot, so openb's 8-GPU G2 server is assumed (96 cores)."""


def openb(traces: Path) -> list[Node]:
    """(a) The FGD paper's cluster: the 1,213 GPU nodes of `alibaba-gpu-v2023/csv/openb_node_list_gpu_node.csv`."""
    return load_nodes(traces / OPENB_NODES, gpu_only=True)


def pai2020(traces: Path) -> list[Node]:
    """(b) Alibaba PAI 2020, `alibaba-pai-v2020/pai_machine_spec.csv` (1,814 GPU machines, 6,742 GPUs).

    Far more CPU per GPU than openb on the 2-GPU machines (P100: 32 cores per GPU, T4: 48), as
    little on the 8-GPU ones (12); five model pools (MISC, P100, V100M32, T4, V100) of 830-2,240 GPUs,
    against openb's one dominant pool (G2, 71 % of its GPUs). Scaled to openb's GPUs, pools renamed
    by rank (MISC plays G2, P100 plays T4, ...)."""
    return named_like(scaled(load_nodes(traces / PAI_MACHINES, gpu_only=True), gpus=openb_gpus(traces),
                             prefix="pai"), openb(traces))


def spot2026(traces: Path) -> list[Node]:
    """(b) Alibaba spot GPU 2026, `alibaba-spot-gpu-v2026/node_info_df.csv` (4,278 nodes, 10,412 GPUs).

    Mostly single-GPU nodes with a whole host's CPU (2,494 A10 nodes with 128 vCPU each, 901
    GPU-series-1 with 192), beside 8-GPU A100/H800/A800 servers: CPU rarely limits a GPU here. Six
    pools, the largest (A100) a third of the GPUs. Scaled to openb's GPUs, pools renamed by rank."""
    return named_like(scaled(load_nodes(traces / SPOT_NODES, gpu_only=True), gpus=openb_gpus(traces),
                             prefix="spot"), openb(traces))


def cpu_halved(traces: Path) -> list[Node]:
    """(c) openb with half the CPU on every node (same GPUs, same models): CPU becomes the scarce resource."""
    return [replace(n, cpu_milli=n.cpu_milli // 2) for n in openb(traces)]


def models_shuffled(traces: Path, *, seed: int = 0) -> list[Node]:
    """(c) openb with its node models permuted across nodes (seeded): each node keeps its GPU count and
    CPU but gets another node's model. The nodes per model stay; which server shape carries which
    model changes, and with it each pool's GPUs and CPU (T4 grows from 842 GPUs to about 2,000, G2
    shrinks from 4,392 to about 2,800)."""
    nodes = openb(traces)
    models = [n.gpus[0].model for n in nodes]
    order = np.random.default_rng(seed).permutation(len(nodes))
    return [relabelled(n, models[i]) for n, i in zip(nodes, order, strict=True)]


def helios(traces: Path) -> list[Node]:
    """Held out. SenseTime Helios, `helios/helios_cluster_summary.csv`: four clusters (Venus, Earth,
    Saturn, Uranus; 997-2,119 GPUs) as four model pools of 8-GPU servers (CPU per server assumed,
    `HELIOS_NODE_CPU_MILLI`), scaled to openb's GPUs, pools renamed by rank."""
    with (traces / HELIOS_CLUSTERS).open() as f:
        clusters = [(row["id"], int(row["gpu_num"])) for row in csv.DictReader(f) if row["id"] != "total"]
    server = Node(name="helios", cpu_milli=HELIOS_NODE_CPU_MILLI, memory_mib=393_216,
                  gpus=tuple(Gpu(index=g, uuid="", model="", memory_mib=0, sharing=Sharing.TIME_SLICING)
                             for g in range(HELIOS_NODE_GPUS)))
    nodes = [renamed(relabelled(server, name), f"{name}-{i}")
             for name, gpus in clusters for i in range(gpus // HELIOS_NODE_GPUS)]
    return named_like(scaled(nodes, gpus=openb_gpus(traces), prefix="helios"), openb(traces))


def cpu_doubled(traces: Path) -> list[Node]:
    """Held out. openb with twice the CPU on every node: CPU stops limiting GPU almost everywhere."""
    return [replace(n, cpu_milli=n.cpu_milli * 2) for n in openb(traces)]


def pai2020_cpu_halved(traces: Path) -> list[Node]:
    """Held out. The PAI 2020 inventory above with half the CPU on every node."""
    return [replace(n, cpu_milli=n.cpu_milli // 2) for n in pai2020(traces)]


def halved_and_shuffled(traces: Path, *, seed: int = 0) -> list[Node]:
    """Held out. openb with both perturbations at once: models shuffled (seeded), CPU halved."""
    return [replace(n, cpu_milli=n.cpu_milli // 2) for n in models_shuffled(traces, seed=seed)]


def openb_even_cpu(traces: Path) -> list[Node]:
    """Diagnostic. openb with its CPU spread evenly over its GPUs: the cluster's CPU and every GPU
    stay, each node gets CPU in proportion to its GPUs. No node holds CPU beyond its GPUs' share, the
    shape of the Helios inventory (`helios`, where fgd-plus loses on cpu250), with openb's models."""
    return even_cpu(openb(traces))


def openb_even_cpu_075(traces: Path) -> list[Node]:
    """Diagnostic. `openb_even_cpu` with three quarters of its CPU (σ ≈ 1.2 instead of 1.6)."""
    return [replace(n, cpu_milli=n.cpu_milli * 3 // 4) for n in openb_even_cpu(traces)]


def openb_even_cpu_085(traces: Path) -> list[Node]:
    """Diagnostic. `openb_even_cpu` with 85 % of its CPU (σ ≈ 1.36)."""
    return [replace(n, cpu_milli=n.cpu_milli * 85 // 100) for n in openb_even_cpu(traces)]


def pai2020_even_cpu(traces: Path) -> list[Node]:
    """Diagnostic. The PAI 2020 inventory above with its CPU spread evenly over its GPUs (as
    `openb_even_cpu`): PAI's 2-GPU machines lose the CPU to spare they hold."""
    return even_cpu(pai2020(traces))


def helios_cpu64(traces: Path) -> list[Node]:
    """Fresh. `helios` with 64-core servers instead of 96: two thirds of the CPU per GPU."""
    return [replace(n, cpu_milli=n.cpu_milli * 2 // 3) for n in helios(traces)]


def spot2026_cpu_halved(traces: Path) -> list[Node]:
    """Fresh. The spot 2026 inventory with half the CPU on every node."""
    return [replace(n, cpu_milli=n.cpu_milli // 2) for n in spot2026(traces)]


def openb_split(traces: Path) -> list[Node]:
    """Fresh. openb with every 8-GPU server split into two 4-GPU nodes, each with half its CPU and
    memory: the same GPUs, models and CPU, no node larger than 4 GPUs."""
    out = []
    for n in openb(traces):
        if len(n.gpus) != 8:
            out.append(n)
            continue
        for half in (0, 1):
            gpus = tuple(replace(g, index=g.index - 4 * half) for g in n.gpus[4 * half:4 * half + 4])
            out.append(renamed(replace(n, cpu_milli=n.cpu_milli // 2, memory_mib=n.memory_mib // 2, gpus=gpus),
                               f"{n.name}-{half}"))
    return out


def openb_pai_mix(traces: Path) -> list[Node]:
    """Fresh. Half of openb's GPU capacity in openb's node shapes, half in PAI 2020's (`pai2020`, pools
    renamed by rank, so PAI's largest pool joins openb's G2): two clusters' server generations in one."""
    half = openb_gpus(traces) // 2
    return [*scaled(openb(traces), gpus=half, prefix="openb"), *scaled(pai2020(traces), gpus=half, prefix="pai")]


def even_cpu(nodes: list[Node]) -> list[Node]:
    """The same nodes, the same CPU in all, each node's share in proportion to its GPUs (rounded
    down to the milli-core)."""
    cpu, gpus = sum(n.cpu_milli for n in nodes), gpu_count(nodes)
    return [replace(n, cpu_milli=cpu * len(n.gpus) // gpus) for n in nodes]


def openb_gpus(traces: Path) -> int:
    return gpu_count(openb(traces))


def gpu_count(nodes: list[Node]) -> int:
    return sum(len(n.gpus) for n in nodes)


def shape(node: Node) -> tuple[str, int, int, int]:
    return (node.gpus[0].model if node.gpus else "", len(node.gpus), node.cpu_milli, node.memory_mib)


def scaled(nodes: list[Node], *, gpus: int, prefix: str) -> list[Node]:
    """The same node shapes in the same proportions, about `gpus` GPUs in all (at most one node's GPUs
    short). Each shape's count × gpus / total is rounded down, then the shapes with the largest
    remainders get one node more while the GPUs left allow. Nodes are renamed `<prefix>-NNNN` in
    the order their shapes first appear; the result depends on `nodes` only."""
    counts = Counter(shape(n) for n in nodes)
    example = {}
    for n in nodes:
        example.setdefault(shape(n), n)
    exact = {s: c * gpus / gpu_count(nodes) for s, c in counts.items()}
    kept = {s: int(e) for s, e in exact.items()}
    left = gpus - sum(k * s[1] for s, k in kept.items())
    for s in sorted(exact, key=lambda s: (-(exact[s] - kept[s]), s)):
        if exact[s] > kept[s] and s[1] <= left:  # a shape whose share is whole keeps it
            kept[s] += 1
            left -= s[1]
    out = []
    for s in counts:  # first-appearance order
        for _ in range(kept[s]):
            out.append(renamed(example[s], f"{prefix}-{len(out):04d}"))
    return out


def named_like(nodes: list[Node], reference: list[Node]) -> list[Node]:
    """`nodes` with each model pool renamed after the reference's pool of the same rank by GPU count
    (ties by name); pools beyond the reference's keep their names."""
    ranked = [pools_by_size(nodes), pools_by_size(reference)]
    names = dict(zip(*ranked, strict=False))
    return [relabelled(n, names.get(n.gpus[0].model, n.gpus[0].model)) for n in nodes]


def pools_by_size(nodes: list[Node]) -> list[str]:
    size = Counter()
    for n in nodes:
        for g in n.gpus:
            size[g.model] += 1
    return sorted(size, key=lambda m: (-size[m], m))


def relabelled(node: Node, model: str) -> Node:
    memory = GPU_MEMORY_MIB.get(model, DEFAULT_GPU_MEMORY_MIB)  # as `load_nodes` gives a GPU of that name
    gpus = tuple(replace(g, model=model, memory_mib=memory) for g in node.gpus)
    return replace(node, gpus=gpus, labels={**node.labels, "nvidia.com/gpu.product": model})


def renamed(node: Node, name: str) -> Node:
    return replace(node, name=name, gpus=tuple(replace(g, uuid=f"{name}/gpu-{g.index}") for g in node.gpus))


def write_openb_csv(nodes: list[Node], path: Path) -> Path:
    """The nodes as an openb node list (sn, cpu_milli, memory_mib, gpu, model), for tools that read one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(("sn", "cpu_milli", "memory_mib", "gpu", "model"))
        for n in nodes:
            out.writerow((n.name, n.cpu_milli, n.memory_mib, len(n.gpus), n.gpus[0].model if n.gpus else ""))
    return path
