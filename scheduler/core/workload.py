"""The workload mix M: which task shapes arrive, and how often (FGD §2.1, "target workload").

Fragmentation is measured against M, so M must be a stable snapshot: `WorkloadMix` counts what it
observes and publishes a new `Workload` only when asked (`snapshot`), keeping score caches valid
between refreshes. The typical set is the most popular shapes covering `coverage` of all
observed pods, added `step` shapes at a time, weights renormalised over the kept shapes (as the
FGD artifact's GetTypicalPods does), and at most `MAX_TYPES` of them. Ties in popularity break on
the shape itself, so the snapshot is a pure function of the counts.

Bounds: fragmentation costs O(nodes · GPUs · |M|), so a workload of thousands of distinct shapes
(a CPU request that differs per pod) would make every score seconds long: M keeps the
`MAX_TYPES` most popular shapes (the FGD traces need at most 124 to cover 95 %). The counts keep
at most `MAX_SHAPES` shapes: past that the less popular half is dropped (the long tail a
95 % cover never reaches), so memory stays flat however many shapes arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector

MAX_TYPES = 256
"""Shapes in M at most (the openb traces' 95 % covers take 21..124)."""
MAX_SHAPES = 4096
"""Distinct shapes counted at most; beyond this the counts keep the most popular half."""


@dataclass(frozen=True, order=True)
class TaskType:
    """A pod shape as fragmentation sees it (memory is not part of it, as in the paper)."""

    cpu_milli: int
    gpu_milli: int
    """Per GPU: 1..999 for a share, 1000 for whole GPUs, 0 for CPU-only."""
    gpus: int
    models: ModelSelector

    @classmethod
    def of(cls, pod: PodRequest) -> TaskType:
        if pod.gpus:
            return cls(pod.cpu_milli, MILLI_PER_GPU, pod.gpus, pod.models)
        if pod.gpu_milli:
            return cls(pod.cpu_milli, pod.gpu_milli, 1, pod.models)
        return cls(pod.cpu_milli, 0, 0, ModelSelector())


@dataclass(frozen=True)
class Workload:
    """An immutable snapshot of M. `weights` are integer counts; frequencies are weights / total."""

    types: tuple[TaskType, ...]
    weights: np.ndarray
    generation: int = 0
    memory_mib: np.ndarray | None = None
    """float64 [K]: the mean memory a pod of each type asked for (0 where unknown). Not part of M as
    FGD defines it (fragmentation ignores memory): the rehearsal's pods ask it, because a node whose
    memory runs out strands its GPUs as surely as one whose CPU does (`rehearsal`)."""

    @property
    def total(self) -> int:
        return int(self.weights.sum())

    @property
    def memory(self) -> np.ndarray:
        """`memory_mib`, zeros where none was given."""
        return self.memory_mib if self.memory_mib is not None else np.zeros(len(self.types))

    @classmethod
    def of(cls, counts: Counter[TaskType], *, coverage: float = 0.95, step: int = 1, generation: int = 0,
           max_types: int = MAX_TYPES, memory_totals: Mapping[TaskType, int] | None = None) -> Workload:
        """The most popular shapes covering `coverage` of `counts` (module doc); `memory_totals`: the
        memory (MiB) the counted pods of each shape asked for in all, for `memory_mib`."""
        ranked = _ranked(counts)
        total = sum(counts.values())
        kept: list[tuple[TaskType, int]] = []
        covered = 0
        target = coverage * total
        i = 0
        while covered < target and i < len(ranked) and len(kept) < max_types:
            for shape, n in ranked[i:i + step]:
                kept.append((shape, n))
                covered += n
            i += step
        kept = kept[:max_types]
        memory = None
        if memory_totals is not None:
            memory = np.array([memory_totals.get(s, 0) / n for s, n in kept], np.float64)
        return cls(tuple(s for s, _ in kept), np.array([n for _, n in kept], np.float64), generation, memory)

    @classmethod
    def of_shapes(cls, seen: Iterable[tuple[TaskType, int, int]], **kwargs) -> Workload:
        """`of` from (shape, memory MiB of one pod, how many pods) as seen, memory totals included."""
        counts: Counter[TaskType] = Counter()
        memory: Counter[TaskType] = Counter()
        for shape, memory_mib, count in seen:
            counts[shape] += count
            memory[shape] += memory_mib * count
        return cls.of(counts, memory_totals=memory, **kwargs)

    @classmethod
    def of_pods(cls, pods: Iterable[PodRequest], **kwargs) -> Workload:
        return cls.of_shapes(((TaskType.of(p), p.memory_mib, 1) for p in pods), **kwargs)


def _sort_key(t: TaskType) -> tuple:
    return (t.cpu_milli, t.gpu_milli, t.gpus, str(t.models))


def _ranked(counts: Counter[TaskType]) -> list[tuple[TaskType, int]]:
    """Most popular first. The artifact sorts by (count, cpu, milli, gpus, model) and reverses:
    every key descending."""
    return sorted(counts.items(), key=lambda kv: (kv[1], *_sort_key(kv[0])), reverse=True)


class WorkloadMix:
    """Counts observed pod shapes; `snapshot` publishes M.

    A new M is published only when it has moved: every `refresh_every` newly observed pods the
    candidate M is compared with the published one, and replaces it when their frequencies differ
    by more than `drift` in total variation distance. A steady workload keeps one M (and warm
    score caches); a shifting one is followed within `refresh_every` pods.
    """

    def __init__(self, *, coverage: float = 0.95, step: int = 1, refresh_every: int = 64,
                 drift: float = 0.02) -> None:
        self._counts: Counter[TaskType] = Counter()
        self._memory: Counter[TaskType] = Counter()
        """Memory (MiB) the counted pods of each shape asked for in all (`Workload.memory_mib`)."""
        self._observed = 0
        self._coverage = coverage
        self._step = step
        self._refresh_every = refresh_every
        self._drift = drift
        self._since_snapshot = 0
        self._snapshot: Workload | None = None
        self._generation = 0

    def observe(self, pod: PodRequest) -> None:
        self.observe_type(TaskType.of(pod), memory_mib=pod.memory_mib)

    def observe_type(self, shape: TaskType, *, memory_mib: int = 0) -> None:
        self._counts[shape] += 1
        self._memory[shape] += memory_mib
        self._observed += 1
        self._since_snapshot += 1
        if len(self._counts) > MAX_SHAPES:  # amortised: the next pruning is MAX_SHAPES / 2 new shapes away
            self._counts = Counter(dict(_ranked(self._counts)[:MAX_SHAPES // 2]))
            self._memory = Counter({s: self._memory[s] for s in self._counts})

    @property
    def observed(self) -> int:
        """Pods observed, every one (the counts may have dropped rare shapes since)."""
        return self._observed

    def snapshot(self) -> Workload | None:
        if not self._counts:
            return None
        if self._snapshot is None or self._since_snapshot >= self._refresh_every:
            candidate = Workload.of(self._counts, coverage=self._coverage, step=self._step,
                                    generation=self._generation + 1, memory_totals=self._memory)
            if self._snapshot is None or distance(candidate, self._snapshot) > self._drift:
                self._generation += 1
                self._snapshot = candidate
            self._since_snapshot = 0
        return self._snapshot


def distance(a: Workload, b: Workload) -> float:
    """Total variation distance between the frequencies of two workloads (0 same, 1 disjoint)."""
    fa = dict(zip(a.types, (a.weights / a.total).tolist(), strict=True))
    fb = dict(zip(b.types, (b.weights / b.total).tolist(), strict=True))
    return 0.5 * sum(abs(fa.get(t, 0.0) - fb.get(t, 0.0)) for t in fa.keys() | fb.keys())
