"""Which of two placement orders leaves less GPU unallocated on this cluster for this workload,
found by playing the workload on a small copy of the cluster with both.

fgd-plus's extra terms (stranded GPU by CPU, model pressure) beat FGD's gradient by up to 4 pp on
some clusters and lose to it by up to 2.2 pp on others (benchmarks/results/robustness*.md). No
closed-form reading of the cluster and the workload told the two apart: the CPU slack σ, the CPU
surplus per node and a σ counting CPU-only pods each failed on inventories made after them. What
does tell them apart is the outcome itself, and it is cheap to get: fill a miniature of the
cluster with pods drawn from M (each asking its type's mean memory) until 130 % of its GPU has
arrived (FGD's experiment, whose measure the choice is judged by), once under each order, on the
same draws, and use the candidate only where it left less GPU unallocated beyond the noise.

    Δ = mean over r of  unallocated_r(candidate) − unallocated_r(reference)     (percent of GPU)

    the candidate's order is used iff Δ + se(Δ) < 0: it must win by more than the rehearsal's own
    noise; ties, near ties and losses keep the reference (FGD).

The miniature keeps the cluster's node shapes (`census`) in proportion (`miniature`) at about `GPUS` GPUs:
the shapes, not the size, decide how fragments form: before this module, a prototype on a quarter
of openb (1,553 GPUs, pods drawn from the pod list with their memory) gave Δ within the seed noise
of the full-size runs on 52 of 52 inventory and pod-list cells, the sign wrong only where
|Δ| < 0.2 pp (benchmarks/results/robustness.md; the tables there record each run's Δ). The
replicas draw their pods and break ties from seeds derived from the caller's seed, so the choice
is a pure function of (the census of node shapes, M, seed), as every policy's answer must be.

Nothing here is I/O: the miniature is a fresh `ClusterState` the caller's state never sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from scheduler.core import filters
from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.fit_memo import FitMemo
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.policies.base import Policy, PolicyContext
from scheduler.core.rehearsal_board import Verdict
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState, Grant
from scheduler.core.workload import TaskType, Workload

GPUS = 1_600
"""GPUs in the miniature at most (a quarter of openb's 6,212); a smaller cluster is played whole."""
REPLICAS = 4
"""Paired fills per order: with a quarter of openb, four put Δ's standard error at 0.02-0.5 pp."""
ARRIVED = 1.3
"""Fill until this multiple of the miniature's GPU capacity has arrived (FGD's experiment)."""


Shape = tuple
"""(CPU milli, memory MiB, per GPU (model, memory MiB, sharing, MIG, NVLink peers)): a node as the
miniature keeps it. Health and availability are left out: the choice is about how the cluster is
built, and a GPU going unhealthy should not call for a new rehearsal."""
Census = tuple[tuple[Shape, int], ...]
"""How many nodes of each shape, shapes in a fixed order: all a rehearsal knows of the cluster."""


def census(nodes: Iterable[Node]) -> Census:
    counts = Counter((n.cpu_milli, n.memory_mib, tuple((g.model, g.memory_mib, int(g.sharing), g.mig_enabled,
                                                          g.nvlink_peers) for g in n.gpus)) for n in nodes)
    return tuple(sorted(counts.items(), key=lambda kv: repr(kv[0])))


def rehearse(shapes: Census, workload: Workload, candidate: Policy, reference: Policy, *, seed: int,
             replicas: int = REPLICAS, gpus: int = GPUS) -> Verdict:
    """Play M on `miniature(shapes, gpus)` `replicas` times under each policy, on the same draws."""
    small = miniature(shapes, gpus)
    capacity = sum(len(n.gpus) for n in small) * MILLI_PER_GPU
    if not capacity or not any(t.gpu_milli for t in workload.types):
        return Verdict((), (), 0)
    draws = [int(s) for s in np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, 0x5EED])
             .generate_state(replicas)]
    played = [(fill(small, workload, candidate, seed=d), fill(small, workload, reference, seed=d)) for d in draws]
    return Verdict(tuple(c for c, _ in played), tuple(r for _, r in played), capacity // MILLI_PER_GPU)


def miniature(shapes: Census, gpus: int) -> list[Node]:
    """The census's node shapes in the same proportions with at most `gpus` GPUs (every node when
    there are no more). Each shape's count × gpus / total is rounded down, then shapes with the
    largest remainders get one node more while the GPUs left allow, shapes left with none first,
    so that a small model pool is not rounded away."""
    total = sum(len(s[2]) * c for s, c in shapes)
    scale = min(1.0, gpus / total) if total else 1.0
    exact = [c * scale for _, c in shapes]
    kept = [int(e) if scale < 1 else c for e, (_, c) in zip(exact, shapes, strict=True)]
    left = gpus - sum(k * len(s[2]) for k, (s, _) in zip(kept, shapes, strict=True))
    for i in sorted(range(len(shapes)), key=lambda i: (kept[i] > 0, -(exact[i] - kept[i]), i)):
        if exact[i] > kept[i] and len(shapes[i][0][2]) <= left:
            kept[i] += 1
            left -= len(shapes[i][0][2])
    return [_node(f"rehearsal-{i:04d}-{k}", shape) for i, ((shape, _), n) in enumerate(zip(shapes, kept, strict=True))
            for k in range(n)]


def fill(nodes: Sequence[Node], workload: Workload, policy: Policy, *, seed: int) -> float:
    """Unallocated GPU % of `nodes` after pods drawn from M (by weight, with replacement) until
    `ARRIVED` × capacity of GPU has arrived, each placed on the policy's best node (ties by a seeded
    node order, as kube-scheduler's) or dropped where none fits. Each pod asks its type's mean
    memory (`Workload.memory_mib`): memory is not in M, but where it runs out first it decides
    which order wins (openb with its CPU spread evenly: the terms lose 2 pp with memory asked and
    are even without it)."""
    state = ClusterState(nodes)
    capacity = int(state.gpu_count[:state.size].sum()) * MILLI_PER_GPU
    ctx = PolicyContext(workload=workload, seed=seed)
    rng = np.random.default_rng(seed)
    rank = rng.permutation(state.size).astype(np.float64)
    pods = [_pod(t, i, int(memory)) for i, (t, memory) in enumerate(zip(workload.types, workload.memory.tolist(),
                                                                         strict=True))]
    masks = [filters.model_mask(state, p) for p in pods]
    frequency = workload.weights / workload.total
    mean_milli = float(frequency @ [p.total_milli for p in pods])
    memo = FitMemo()
    arrived = allocated = 0
    while arrived < ARRIVED * capacity:
        for t in rng.choice(len(pods), size=max(16, int(0.25 * capacity / mean_milli)), p=frequency).tolist():
            if arrived >= ARRIVED * capacity:
                break
            pod = pods[t]
            arrived += pod.total_milli
            fit = memo.fit(state, pod, state.size, masks[t])
            at = fit.fits.nonzero()[0]
            if not len(at):
                continue
            rows, slot_fit = fit.rows.take(at), fit.slot_fit.take(at, 0)
            scores = policy.node_scores(state, pod, rows, slot_fit, ctx)
            best = (scores == scores.max()).nonzero()[0]
            choice = best[rank.take(rows.take(best)).argmin()]
            row = int(rows[choice])
            slots = tuple(int(s) for s in policy.pick(state, pod, row, slot_fit[choice], ctx))
            state.apply(row, _grant(state, pod, row, slots))
            allocated += pod.total_milli
    return 100.0 * (capacity - allocated) / capacity


def _node(name: str, shape: Shape) -> Node:
    cpu, memory, gpus = shape
    return Node(name, cpu, memory, tuple(Gpu(i, f"{name}/{i}", model, gpu_memory, Sharing(sharing), mig, True, peers)
                                         for i, (model, gpu_memory, sharing, mig, peers) in enumerate(gpus)))


def _pod(shape: TaskType, i: int, memory_mib: int) -> PodRequest:
    whole = shape.gpu_milli == MILLI_PER_GPU
    return PodRequest(uid=f"rehearsal/{i}", namespace="rehearsal", name=str(i), cpu_milli=shape.cpu_milli,
                      memory_mib=memory_mib,
                      gpus=shape.gpus if whole else 0, gpu_milli=0 if whole else shape.gpu_milli,
                      models=shape.models if shape.gpu_milli else ModelSelector())


def _grant(state: ClusterState, pod: PodRequest, row: int, slots: tuple[int, ...]) -> Grant:
    milli = pod.gpu_milli if pod.is_share else MILLI_PER_GPU if slots else 0
    memory = tuple(int(state.gpu_memory[row, s]) if not pod.is_share else pod.gpu_memory_mib for s in slots)
    return Grant(slots, milli, memory, pod.cpu_milli, pod.memory_mib)
