"""The FGD experiment (reference/fgd-protocol.md §2.1), step by step:

1. cluster: the GPU nodes of the node list (the openb GPU-node list has only those)
2. typical pods M: the pod file's shapes (CPU-only included) by popularity, the most popular
   covering 95 % of pods, one shape at a time (the artifact's GetTypicalPods with the paper runs'
   config: isInvolvedCpuPods true, podPopularityThreshold 95, podIncreaseStep 1, gpuResWeight 0).
   Shapes are (CPU, GPU milli, GPU count, model list as written), memory left out.
3. order: pods sorted by name, then shuffled with the run's seed
4. inflation ("tune" 1.3): below 1.3 × capacity, pods drawn uniformly (with replacement, from the
   name-sorted file) are appended as `<name>-tuned-<i>` until the next draw would pass the target;
   above it, pods drawn uniformly from the shuffled list are removed until it fits
5. arrival-only replay: each pod gets one scheduling attempt (kube-scheduler emulation, extender
   in-process or over HTTP) and is never deleted or retried
6. a sample after every pod: arrived GPU request (failed pods included), allocated GPU, the
   fragment amount against M and the idle GPU; binned per percent of capacity (`curves`)

One artifact quirk is kept on purpose: step 4 compares the target with the drawn pod's per-GPU
milli, not its total, so an 8-GPU pod may overshoot it by up to 7 GPUs, as there.
Our generator is numpy's PCG64, not Go's, so runs match the published ones in distribution over
seeds, not pod by pod.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.model import Node
from scheduler.core.policies import fgd_plus
from scheduler.core.rehearsal_board import Verdict
from scheduler.core.selector import ModelSelector
from scheduler.core.workload import TaskType, Workload
from simulator.backends import InProcess, OverHttp
from simulator.cluster_view import ClusterView
from simulator.curves import Curve, Samples
from simulator.frag_tracker import FragmentationTracker
from simulator.kube_scheduler import KubeScheduler, TieBreak
from simulator.traces.alibaba import TracePod

TUNE_RATIO = 1.3
TYPICAL_COVERAGE = 0.95
TYPICAL_STEP = 1
NAMESPACE = "openb"


@dataclass(frozen=True)
class FgdResult:
    trace: str
    policy: str
    seed: int
    curve: Curve
    pods: int
    failed: int
    seconds: float
    placements: tuple[tuple[str, str, tuple[int, ...], int], ...] = ()
    """(pod, node, GPU indices, milli per GPU) per placed pod, in arrival order, when asked to keep them."""
    rehearsal: Verdict | None = None
    """fgd-plus's rehearsal in this run (terms against FGD), where it played one."""

    @property
    def summary(self) -> dict:
        out = {"trace": self.trace, "policy": self.policy, "seed": self.seed,
               "unallocated_pct_at_100": _pct(100.0 - self.curve.at(100)),
               "unallocated_pct_at_130": _pct(100.0 - self.curve.at(130)),
               "fragment_pct_at_100": _pct(self.curve.at(100, "fragment_pct")),
               "pods": self.pods, "failed": self.failed, "seconds": round(self.seconds, 3)}
        if self.rehearsal is not None:
            out["rehearsal_delta"] = round(self.rehearsal.delta, 3)
            out["rehearsal_chose_terms"] = self.rehearsal.candidate_wins
        return out


def _pct(value: float) -> float | None:
    """Rounded to 0.01; None (JSON null) where the run has no such point (it never got that far)."""
    return None if np.isnan(value) else round(value, 2)


def task_type(pod: TracePod) -> TaskType:
    """The artifact's pod spec key; the model list is kept as written (duplicates too), as it groups by that text."""
    if not pod.gpus:
        return TaskType(pod.cpu_milli, 0, 0, ModelSelector())
    return TaskType(pod.cpu_milli, pod.gpu_milli, pod.gpus,
                    ModelSelector(allow=tuple(t.lower() for t in pod.model_terms)))


def typical_pods(pods: Sequence[TracePod]) -> Workload:
    return Workload.of_shapes(((task_type(p), p.memory_mib, 1) for p in pods), coverage=TYPICAL_COVERAGE,
                              step=TYPICAL_STEP)


def arrivals(pods: Sequence[TracePod], *, capacity_milli: int, seed: int, ratio: float = TUNE_RATIO) -> list[TracePod]:
    """Steps 3 and 4: the shuffled, inflated (or trimmed) arrival sequence."""
    rng = np.random.default_rng(seed)
    originals = sorted(pods, key=lambda p: p.name)
    if not any(p.total_milli for p in originals):
        raise ValueError("the pod list asks for no GPU at all: nothing to inflate to a share of GPU capacity")
    sequence = [originals[i] for i in rng.permutation(len(originals))]
    total = sum(p.total_milli for p in sequence)
    target = ratio * capacity_milli
    if total > target:
        while total > target:
            total -= sequence.pop(int(rng.integers(len(sequence)))).total_milli
    elif total < target:
        i = 0
        while True:
            drawn = originals[int(rng.integers(len(originals)))]
            if total + drawn.gpu_milli > target:  # the artifact's check: per-GPU milli (see module doc)
                break
            sequence.append(replace(drawn, name=f"{drawn.name}-tuned-{i}"))
            total += drawn.total_milli
            i += 1
    return sequence


def run(nodes: Sequence[Node], pods: Sequence[TracePod], *, trace: str, policy: str, seed: int,
        via_http: bool = False, keep_placements: bool = False, limit: int | None = None,
        progress=None) -> FgdResult:
    """One run of the protocol (the first `limit` arrivals only, for tests). `progress(done, total)`
    is called now and then."""
    return asyncio.run(_run(list(nodes), pods, trace=trace, policy=policy, seed=seed, via_http=via_http,
                            keep_placements=keep_placements, limit=limit, progress=progress))


async def _run(nodes: list[Node], pods: Sequence[TracePod], *, trace: str, policy: str, seed: int,
               via_http: bool, keep_placements: bool, limit: int | None, progress) -> FgdResult:
    started = time.perf_counter()
    gpu_nodes = [n for n in nodes if n.gpus]
    workload = typical_pods(pods)
    view = ClusterView(gpu_nodes)
    gpus = view.capacity_milli // 1000
    sequence = arrivals(pods, capacity_milli=view.capacity_milli, seed=seed)[:limit]
    engine = Engine(gpu_nodes, settings=EngineSettings(policy=policy, seed=seed), workload=workload)
    if via_http:
        async with OverHttp.serving(engine, view.names) as backend:
            result = await _replay(view, backend, sequence, workload, gpus, trace, policy, seed,
                                   keep_placements, progress, started)
    else:
        result = await _replay(view, InProcess(engine, view.names), sequence, workload, gpus, trace, policy, seed,
                               keep_placements, progress, started)
    return replace(result, rehearsal=fgd_plus.played_verdict(engine.policy_context))


async def _replay(view, backend, sequence, workload, gpus, trace, policy, seed, keep_placements, progress,
                  started) -> FgdResult:
    scheduler = KubeScheduler(view, backend, seed=seed, tie_break=TieBreak.NODE_ORDER)
    tracker = FragmentationTracker(view.state, workload)
    samples = Samples(len(sequence) + 1)
    tracker.update()
    samples.record(0, 0, tracker.amount_milli, tracker.idle_milli)
    arrived = failed = 0
    placements = []
    for i, pod in enumerate(sequence):
        request = pod.request(uid=f"{NAMESPACE}/{pod.name}", namespace=NAMESPACE)
        arrived += pod.total_milli
        outcome = await scheduler.schedule(request)
        if outcome.alloc is None:
            failed += 1
        else:
            tracker.update()
            if keep_placements:
                placements.append((pod.name, outcome.alloc.node, outcome.alloc.slots, outcome.alloc.milli))
        samples.record(arrived, view.allocated_milli, tracker.amount_milli, gpus * 1000 - view.allocated_milli)
        if progress is not None and i % 256 == 0:
            progress(i, len(sequence))
    if progress is not None:
        progress(len(sequence), len(sequence))
    return FgdResult(trace, policy, seed, samples.curve(gpus), len(sequence), failed,
                     time.perf_counter() - started, tuple(placements))
