"""Every number the seeded workload generator uses, each with where it comes from.

Sources (files under ../shared/traces/, read once to choose these numbers; nothing is read at run time):
  [helios]  Helios, SenseTime (Hu et al., SC '21): helios/helios_cluster_summary.csv (Earth row) and
            helios/Earth_gpu_number.csv (GPUs per virtual cluster, VC)
  [philly]  Philly, Microsoft (Jeon et al., ATC '19): acme/cluster_summary.csv (Philly row), philly/philly_vc.csv
  [pai]     Alibaba PAI 2020 (Weng et al., NSDI '22): acme/cluster_summary.csv (PAI row)
  [acme]    Acme, Shanghai AI Lab (Hu et al., NSDI '24): acme/cluster_summary.csv (Seren row)
  [openb]   Alibaba GPU trace v2023 (FGD, ATC '23): reference/fgd-protocol.md §1.2-1.3
Where no trace says anything, the number is marked "choice" and the reason is given.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeGroup:
    prefix: str
    count: int
    gpus: int
    model: str
    gpu_memory_mib: int
    cpu_cores: int
    memory_gib: int
    sharing: str
    nvlink: bool = False


@dataclass(frozen=True)
class Parameters:
    # ------------------------------------------------------------------ the cluster (128 GPUs)
    nodes: tuple[NodeGroup, ...] = (
        # [openb] §1.2: 8-GPU nodes with 96 cores hold 71 % of openb's GPUs (G2); here A100-class cards with
        # NVLink. MPS on half of them so MPS shares have somewhere to go (choice).
        NodeGroup("a100-mps", 4, 8, "A100-SXM4-80GB", 81920, 96, 768, "mps", nvlink=True),
        NodeGroup("a100", 6, 8, "A100-SXM4-80GB", 81920, 96, 768, "time-slicing", nvlink=True),
        # [openb] §1.2: V100M32 4-GPU nodes have 48 cores and 368 GiB.
        NodeGroup("v100", 6, 4, "V100M32", 32510, 48, 368, "time-slicing"),
        # [openb] §1.2: T4 2-GPU nodes have 104 cores and 512 GiB.
        NodeGroup("t4", 12, 2, "T4", 15109, 104, 512, "time-slicing"),
    )

    # ------------------------------------------------------------------------------ teams
    team_vc_gpus: tuple[tuple[str, int], ...] = (
        # [helios] Earth_gpu_number.csv, 2020-09-28: the five largest VCs (vc6YE 216, vcVP5 176, vc4om 96,
        # vcvlY 96, vcTJs 72 GPUs). Team names are ours; sizes set both the share of jobs each team
        # submits and its quota.
        ("vision", 216), ("language", 176), ("speech", 96), ("recsys", 96), ("research", 72),
    )
    guaranteed_fraction: float = 0.8
    """choice: each team is guaranteed 80 % of its proportional share; the rest is there to borrow."""
    max_factor: float = 2.0
    """choice: a team may borrow up to twice its guarantee (bounded by the cluster) ..."""
    max_at_least_gpus: float = 32.0
    """choice: ... and at least enough for the largest job the mix makes (32 GPUs), so every job can run."""

    # --------------------------------------------------------------------------- job sizes
    size_weights: tuple[tuple[str, float], ...] = (
        # GPUs per job. [helios] Earth GPU jobs: median 1, mean 2.10 GPUs; [philly]: median 1, mean 1.93;
        # [pai]: median 0.5, mean 0.68 (fractional GPUs are common there); [acme] Seren: median 1, mean 5.68.
        # This mix has median 1 and mean ~2.2 GPUs, shares from PAI's half-GPU median (30 %, between
        # PAI and Helios/Philly, which have none), and a few multi-node gangs as [acme] sees for LLMs.
        ("share", 0.30), ("1", 0.45), ("2", 0.08), ("4", 0.08), ("8", 0.06), ("16", 0.02), ("32", 0.01),
    )
    share_milli: tuple[tuple[int, int], ...] = (
        # [openb] §1.3: the most common shares in openb default and how many pods ask for each.
        (810, 1078), (470, 750), (320, 328), (650, 253), (230, 140),
    )
    mps_fraction: float = 0.3
    """choice: the share of GPU-sharing pods that ask for MPS (no trace records the sharing mode)."""
    split_fraction: float = 0.3
    """choice: 2- and 4-GPU jobs that run as a gang of 1-GPU pods (data parallel across nodes)
    instead of one pod; jobs above 8 GPUs are always gangs of 8-GPU pods."""
    cpu_cores_per_gpu: float = 6.0
    """[openb] §1.2: 8-GPU nodes have 96 cores, 12 per GPU; pods ask for about half of that."""
    share_cpu_cores: float = 3.0
    """[openb] §1.3: the most common CPU request in openb default is 3.152 cores (1,592 pods)."""
    memory_gib_per_core: float = 4.0
    """[openb] §1.2: 96-core 8-GPU nodes have 384 GiB, 4 GiB per core."""

    # ---------------------------------------------------------------------------- durations
    duration_median_s: float = 234.0
    """[helios] Earth: median GPU job run time 234 s."""
    duration_mean_s: float = 5130.6
    """[helios] Earth: mean GPU job run time 5,130.6 s. Log-normal with this median and mean:
    σ = sqrt(2 ln(mean / median)) ≈ 2.48."""
    duration_cap_s: float = 6 * 3600.0
    """choice: runs are cut at 6 h, above the log-normal's 95th percentile (~3.9 h; 3.4 % of runs are
    cut), so the p95 of job times is the distribution's, not the cap's (a 2 h cap cut 8.4 % and
    made every p95 the cap); [helios] Earth's tail reaches days, which a demo cannot replay."""

    # ----------------------------------------------------------------------------- arrivals
    jobs: int = 400
    """choice: a few hundred jobs keeps `make demo` (over HTTP) well under two minutes."""
    offered_load: float = 1.5
    """choice: arrivals are Poisson at a rate that asks for 150 % of the GPUs on average, so queues
    form and quotas matter. [helios] Earth's median GPU queueing delay is 0 s but its mean is 319 s:
    busy, with bursts."""

    # ------------------------------------------------------------------------------ failures
    failure_at_fraction: float = 0.4
    """choice: one GPU turns unhealthy 40 % into the arrival span (a demo event, not a measured rate)."""
    failure_repair_s: float = 3600.0
    """choice: and is healthy again an hour later."""
