"""A large synthetic cluster and pod mix for the speed benchmarks (seeded, deterministic).

5,000 nodes by default, "up to 8 GPUs" each: 40% 8 × A100 (NVLink), 20% 8 × H100 (NVLink),
25% 4 × T4 in MPS mode, 10% 2 × A10 time-sliced, 5% CPU-only.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.model import Gpu, Node, Sharing

SHAPES = [  # (share of nodes, GPUs, model, MiB, sharing, nvlink, cpu, memory)
    (0.40, 8, "NVIDIA-A100-SXM4-80GB", 81920, Sharing.EXCLUSIVE, True, 128_000, 1 << 20),
    (0.20, 8, "NVIDIA-H100-80GB-HBM3", 81559, Sharing.EXCLUSIVE, True, 192_000, 2 << 20),
    (0.25, 4, "Tesla-T4", 15360, Sharing.MPS, False, 64_000, 256 << 10),
    (0.10, 2, "NVIDIA-A10", 23028, Sharing.TIME_SLICING, False, 32_000, 128 << 10),
    (0.05, 0, "", 0, Sharing.EXCLUSIVE, False, 64_000, 256 << 10),
]


def nodes(count: int = 5000) -> list[Node]:
    out = []
    i = 0
    for share, gpus, model, memory, sharing, nvlink, cpu, mem in SHAPES:
        for _ in range(round(count * share)):
            name = f"node-{i:05d}"
            out.append(Node(name, cpu, mem, tuple(
                Gpu(g, f"GPU-{name}-{g}", model, memory, sharing,
                    nvlink_peers=tuple(p for p in range(gpus) if p != g) if nvlink else ())
                for g in range(gpus))))
            i += 1
    return out[:count]


def cluster_file_dict(count: int = 5000) -> dict:
    return {"nodes": [{"name": n.name, "cpuMilli": n.cpu_milli, "memoryMiB": n.memory_mib,
                       "gpus": [{"index": g.index, "uuid": g.uuid, "model": g.model, "memoryMiB": g.memory_mib,
                                 "sharing": g.sharing.label, "nvlinkPeers": list(g.nvlink_peers)} for g in n.gpus]}
                      for n in nodes(count)]}


def pod_json(i: int, rng: np.random.Generator) -> dict:
    """A mix of whole-GPU and shared pods: 45% 1 GPU, 10% 2-8 GPUs, 35% shares, 10% MPS shares."""
    kind = rng.choice(["one", "multi", "share", "mps"], p=[0.45, 0.10, 0.35, 0.10])
    limits: dict[str, str] = {"cpu": str(int(rng.choice([1, 2, 4, 8]))), "memory": f"{int(rng.choice([4, 8, 16]))}Gi"}
    annotations = {}
    if kind == "one":
        limits["nvidia.com/gpu"] = "1"
    elif kind == "multi":
        limits["nvidia.com/gpu"] = str(int(rng.choice([2, 4, 8])))
    else:
        limits["gpusched.io/gpu-milli"] = str(int(rng.choice([100, 250, 300, 500, 700])))
        limits["gpusched.io/gpu-memory"] = str(int(rng.choice([1024, 2048, 4096])))
        if kind == "mps":
            annotations["gpusched.io/sharing"] = "mps"
    return {"metadata": {"name": f"bench-{i}", "namespace": "bench", "uid": f"bench-uid-{i}",
                         "annotations": annotations, "labels": {"app": "bench"}},
            "spec": {"schedulerName": "gpu-scheduler",
                     "containers": [{"name": "main", "image": "registry.example.com/bench:1",
                                     "resources": {"limits": limits, "requests": limits}}]},
            "status": {"phase": "Pending"}}
