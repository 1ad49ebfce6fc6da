"""The seeded workload generator (`gpusched simulate --generate SEED`): a cluster and a scenario
drawn from published trace statistics. Every number is in `parameters.py`, with its source.

Same seed, same parameters -> the same cluster and scenario, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scheduler.core.model import Gpu, Node, Sharing
from simulator.generator.parameters import NodeGroup, Parameters
from simulator.scenario import GpuFailure, JobSpec, Scenario, TeamQuota

__all__ = ["DEFAULTS", "Parameters", "generate", "generated_cluster"]

DEFAULTS = Parameters()


def generated_cluster(parameters: Parameters = DEFAULTS) -> list[Node]:
    return [node for group in parameters.nodes for node in _group_nodes(group)]


def _group_nodes(group: NodeGroup) -> list[Node]:
    nodes = []
    for n in range(group.count):
        name = f"{group.prefix}-{n}"
        gpus = tuple(Gpu(index=i, uuid=f"GPU-{name}-{i}", model=group.model, memory_mib=group.gpu_memory_mib,
                         sharing=Sharing.parse(group.sharing),
                         nvlink_peers=tuple(j for j in range(group.gpus) if j != i) if group.nvlink else ())
                     for i in range(group.gpus))
        nodes.append(Node(name, group.cpu_cores * 1000, group.memory_gib * 1024, gpus,
                          {"nvidia.com/gpu.product": group.model}))
    return nodes


def generate(seed: int, parameters: Parameters = DEFAULTS, *, nodes: Sequence[Node] | None = None
             ) -> tuple[list[Node], Scenario]:
    """A cluster (the parameters' own, or `nodes`) and a scenario for it."""
    p = parameters
    rng = np.random.default_rng(seed)
    nodes = list(nodes) if nodes is not None else generated_cluster(p)
    capacity = sum(len(n.gpus) for n in nodes)
    if capacity == 0:
        raise ValueError("the cluster has no GPUs")
    has_mps = any(g.sharing is Sharing.MPS for n in nodes for g in n.gpus)
    teams, team_p = _teams(p, capacity)

    sizes, size_p = zip(*p.size_weights, strict=True)
    shares, share_w = zip(*p.share_milli, strict=True)
    sigma = math.sqrt(2 * math.log(p.duration_mean_s / p.duration_median_s))
    jobs: list[dict] = []
    for i in range(p.jobs):
        size = sizes[rng.choice(len(sizes), p=np.array(size_p) / sum(size_p))]
        team = teams[rng.choice(len(teams), p=team_p)].name
        duration = min(p.duration_cap_s, float(rng.lognormal(math.log(p.duration_median_s), sigma)))
        job = {"name": f"job-{i:04d}", "team": team, "duration_s": round(max(1.0, duration), 1)}
        if size == "share":
            milli = int(shares[rng.choice(len(shares), p=np.array(share_w) / sum(share_w))])
            job.update(gpu_milli=milli, cpu_milli=int(p.share_cpu_cores * 1000), mps=has_mps and rng.random() < p.mps_fraction)
        else:
            gpus = int(size)
            width, per_pod = (gpus // 8, 8) if gpus > 8 else (gpus, 1) if gpus > 1 and rng.random() < p.split_fraction else (1, gpus)
            job.update(width=width, gpus=per_pod, gang=width > 1, cpu_milli=int(p.cpu_cores_per_gpu * per_pod * 1000))
        job["memory_mib"] = int(job["cpu_milli"] / 1000 * p.memory_gib_per_core * 1024)
        jobs.append(job)

    # Poisson arrivals at the rate that offers `offered_load` × capacity on average.
    demand = sum(j.get("width", 1) * (j.get("gpus", 0) + j.get("gpu_milli", 0) / 1000) * j["duration_s"] for j in jobs)
    rate = p.offered_load * capacity / (demand / len(jobs))
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=len(jobs)))
    specs = tuple(JobSpec(submit_s=round(float(t), 1), **j) for t, j in zip(arrivals, jobs, strict=True))

    multi = [n for n in nodes if len(n.gpus) > 1] or [n for n in nodes if n.gpus]
    victim = multi[int(rng.integers(len(multi)))]
    failure = GpuFailure(at_s=round(float(arrivals[-1]) * p.failure_at_fraction, 1), node=victim.name,
                         gpu=int(rng.integers(len(victim.gpus))), repair_s=p.failure_repair_s)
    notes = (f"Generated with seed {seed}: {len(specs)} jobs from {len(teams)} teams on {len(nodes)} nodes / "
             f"{capacity} GPUs, Poisson arrivals offering {p.offered_load:.0%} of the GPUs, one GPU failure "
             f"({failure.node} GPU {failure.gpu} at {failure.at_s:.0f} s for {failure.repair_s:.0f} s).",
             "Job sizes, durations and team shares follow simulator/generator/parameters.py "
             "(Helios, Philly, PAI, Acme and openb statistics, each number cited there).")
    if not has_mps:
        notes += ("This cluster has no MPS GPUs: the generator asked for no MPS shares.",)
    return nodes, Scenario(name=f"generated-{seed}", jobs=specs, failures=(failure,), teams=teams, notes=notes)


def _teams(p: Parameters, capacity: int) -> tuple[tuple[TeamQuota, ...], np.ndarray]:
    total = sum(g for _, g in p.team_vc_gpus)
    teams = []
    for name, gpus in p.team_vc_gpus:
        share = gpus / total
        guaranteed = math.floor(capacity * share * p.guaranteed_fraction * 1000) / 1000
        teams.append(TeamQuota(name, guaranteed,
                               min(float(capacity), max(guaranteed * p.max_factor, p.max_at_least_gpus))))
    return tuple(teams), np.array([g for _, g in p.team_vc_gpus], float) / total
