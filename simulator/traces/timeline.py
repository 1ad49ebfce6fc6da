"""An openb pod list replayed by its own timestamps, as a `Scenario` (one single-pod job per row).

A pod arrives at `creation_time` and, once placed, runs for what it ran in the trace:
`deletion_time − scheduled_time` (`− creation_time` for the pods the trace never scheduled).
The trace has no teams or gangs: every pod is in team `openb`. As fgd-protocol.md §1.3 notes,
this is a sample, not a load timeline (at most ~56 pods are alive at once on the full cluster);
replay it on a smaller cluster to see queueing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.scenario import JobSpec, Scenario
from simulator.traces.alibaba import TracePod
from simulator.traces.csvrows import TraceError

TEAM = "openb"
SAMPLE_WARNING = ("an openb pod list is a sample of pods, not a load timeline (its creation times span months, "
                  "with at most ~56 pods alive at once): allocation, fragmentation and makespan replayed by time "
                  "do not describe a cluster's load; for placement quality use --protocol fgd")


def openb_scenario(pods: Sequence[TracePod], *, path: str | Path) -> Scenario:
    jobs = []
    for pod in pods:
        if pod.creation_s is None or pod.deletion_s is None:
            raise TraceError(f"{path}: pod {pod.name} has no creation_time/deletion_time: "
                             "this pod list cannot be replayed by time (use --protocol fgd)")
        started = pod.scheduled_s if pod.scheduled_s is not None else pod.creation_s
        whole = pod.gpu_milli == 1000
        jobs.append(JobSpec(
            name=pod.name, team=TEAM, submit_s=pod.creation_s, duration_s=max(0.0, pod.deletion_s - started),
            gpus=pod.gpus if whole else 0, gpu_milli=0 if whole else pod.gpu_milli,
            cpu_milli=pod.cpu_milli, memory_mib=pod.memory_mib, models=",".join(pod.model_terms)))
    jobs.sort(key=lambda j: (j.submit_s, j.name))
    return Scenario(name=Path(path).stem, jobs=tuple(jobs), notes=(
        f"Warning: {SAMPLE_WARNING}.",
        f"{len(jobs)} pods of {Path(path).name}, each arriving at its creation_time and running for its "
        "trace run time (deletion_time - scheduled_time); no teams or gangs in this trace.",))
