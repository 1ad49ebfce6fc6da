"""Many FGD protocol runs (traces × policies × seeds) on a process pool, with a progress bar.

Each worker process loads a trace once and keeps it (`load_trace`), runs its share of the tasks and
sends back only the result (the binned curve and counters). The parent writes all outputs.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from simulator import protocol_fgd
from simulator.traces.alibaba import load_pods
from simulator.traces.nodes import load_nodes

FGD_TRACES = ("default", "cpu050", "cpu100", "cpu200", "cpu250", "gpushare40", "gpushare60", "gpushare80",
              "gpushare100", "gpuspec10", "gpuspec20", "gpuspec25", "gpuspec33", "multigpu20", "multigpu30",
              "multigpu40", "multigpu50")
"""The 17 pod lists of the paper's experiments (experiments/run_scripts/generate_run_scripts.py)."""
FGD_POLICIES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd")


@dataclass(frozen=True)
class Task:
    nodes: str
    pods: str
    policy: str
    seed: int
    via_http: bool = False
    placements: bool = False
    """Keep every pod's placement (the report writes them as CSV)."""

    @property
    def trace(self) -> str:
        return Path(self.pods).stem


@lru_cache(maxsize=4)
def load_trace(nodes: str, pods: str):
    """(GPU nodes, pods) of a node list and a pod list, cached per process."""
    return load_nodes(nodes, gpu_only=True), load_pods(pods)


def run_task(task: Task) -> protocol_fgd.FgdResult:
    nodes, pods = load_trace(task.nodes, task.pods)
    return protocol_fgd.run(nodes, pods, trace=task.trace, policy=task.policy, seed=task.seed, via_http=task.via_http,
                            keep_placements=task.placements)


def run_all(tasks: Sequence[Task], *, jobs: int, on_done: Callable[[protocol_fgd.FgdResult], None] | None = None
            ) -> list[protocol_fgd.FgdResult]:
    """Every task, `jobs` at a time (in this process when jobs == 1); results in completion order."""
    results = []
    if jobs <= 1:
        for task in tasks:
            results.append(run_task(task))
            if on_done:
                on_done(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # Group by trace so each worker mostly reuses the trace it has loaded.
        futures = [pool.submit(run_task, t) for t in sorted(tasks, key=lambda t: (t.pods, t.seed, t.policy))]
        for future in as_completed(futures):
            results.append(future.result())
            if on_done:
                on_done(results[-1])
    return results


def machine() -> dict:
    """Where a timing was taken (timings on shared machines are noisy; the date and load say how)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average_1m": round(load[0], 2)}
