"""Gang planning on a 5,000-node cluster, and what a pending gang does to filter latency.

    .venv/bin/python -m benchmarks.gang_planning [--nodes 5000] [--load 2000] [--repeat 5]

The cluster is `big_cluster.nodes` (A100/H100/T4/A10/CPU mix) with 5 zones and racks of 40
nodes, partly filled by `--load` pods of the latency benchmark's mix (filter + bind, seeded).
Measured in-process, on the engine the extender and the simulator share (HTTP adds the
per-call overhead `extender_latency.py` measures, independent of gangs):

1. `plan_gang` alone (the pure what-if), median and best of `--repeat` runs, for gangs of 128 and
   1,024 members of several shapes, members free to use every node;
2. the filter call that completes a gang (plan + hold the reservation in one step), and a
   waiting member's filter call (the "k of n members pending" answer);
3. an ordinary pod's filter call (p50/p99 over 300 pods) with no gang, while a 1,024-member gang
   waits for its last member, and while its reservation is held.

Writes `benchmarks/results/gangs.md`. Timings depend on the machine and its load; the file says
where and when they were taken.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import big_cluster
from benchmarks.machine import describe
from scheduler.core.contract import ZONE_LABEL
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.gang_planning import GangPlan, Topology, plan_gang
from scheduler.core.gangs import GangSettings
from scheduler.core.request import parse_pod

RACK = "example.com/rack"
SHAPES = [  # (label, members, limits, model selector)
    ("128 × 8 GPUs", 128, {"nvidia.com/gpu": "8", "cpu": "32", "memory": "256Gi"}, "A100*,H100*"),
    ("1,024 × 8 GPUs", 1024, {"nvidia.com/gpu": "8", "cpu": "32", "memory": "256Gi"}, "A100*,H100*"),
    ("1,024 × 1 GPU", 1024, {"nvidia.com/gpu": "1", "cpu": "4", "memory": "32Gi"}, "A100*,H100*"),
    ("1,024 × 0.5 GPU share", 1024, {"gpusched.io/gpu-milli": "500", "gpusched.io/gpu-memory": "8192",
                                     "cpu": "2", "memory": "8Gi"}, ""),
]


def cluster(count: int) -> list:
    return [replace(n, labels={ZONE_LABEL: f"zone-{i % 5}", RACK: f"rack-{i // 40:03d}"})
            for i, n in enumerate(big_cluster.nodes(count))]


def member(gang: str, i: int, size: int, limits: dict, models: str) -> dict:
    annotations = {"gpusched.io/gang-size": str(size)}
    if models:
        annotations["gpusched.io/gpu-model"] = models
    return {"metadata": {"name": f"{gang}-{i}", "namespace": "train", "uid": f"{gang}-uid-{i}",
                         "labels": {"gpusched.io/gang": gang}, "annotations": annotations},
            "spec": {"containers": [{"name": "main", "resources": {"limits": limits, "requests": limits}}]}}


def loaded_engine(nodes: list, load: int, seed: int = 7) -> Engine:
    engine = Engine(nodes, settings=EngineSettings(gangs=GangSettings(topology=Topology(rack_label=RACK))),
                    clock=lambda: 0.0)
    names = [n.name for n in nodes]
    rng = np.random.default_rng(seed)
    for i in range(load):
        pod = parse_pod(big_cluster.pod_json(i, rng))
        answer = engine.filter(pod, names)
        if answer.passed:
            engine.bind(pod.uid, pod.namespace, pod.name, answer.passed[0])
    return engine


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} µs"


def time_plans(engine: Engine, members: list, repeat: int) -> tuple[list[float], GangPlan | str]:
    tools = engine.gates.tools
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = plan_gang(engine.state, members, models_of=tools.models_of, policy_of=tools.policy_of,
                           ctx=tools.context(), allocate=tools.allocate,
                           topology=engine.settings.gangs.topology)
        runs.append(time.perf_counter() - started)
    return runs, result


def filter_latencies(engine: Engine, names: list[str], count: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        pod = parse_pod(big_cluster.pod_json(100_000 + i, rng))
        started = time.perf_counter()
        engine.filter(pod, names)
        out.append(time.perf_counter() - started)
        engine.release(pod.uid)  # forget it: the next sample sees the same books
    return out


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def run(nodes_count: int, load: int, repeat: int) -> str:
    nodes = cluster(nodes_count)
    names = [n.name for n in nodes]
    started = time.perf_counter()
    engine = loaded_engine(nodes, load)
    setup = time.perf_counter() - started
    used = int((1000 * engine.state.present.sum() - engine.state.free_milli[engine.state.present].sum()) // 1000)
    lines = [f"## Planning (`plan_gang`, a what-if on a copy of the books), {nodes_count:,} nodes", "",
             "| gang | members placed | nodes | zones | racks | median | best |", "|---|---|---|---|---|---|---|"]
    for label, size, limits, models in SHAPES:
        members = [parse_pod(member("g", i, size, limits, models)) for i in range(size)]
        runs, result = time_plans(engine, members, repeat)
        if isinstance(result, GangPlan):
            placed = (f"{len(result.placements):,}", f"{len(result.nodes):,}", str(len(result.zones)),
                      str(len(result.racks)))
        else:
            placed = (f"does not fit: {result}", "-", "-", "-")
        lines.append(f"| {label} | {' | '.join(placed)} | {ms(statistics.median(runs))} | {ms(min(runs))} |")

    lines += ["", "## Through the engine's filter verb (1,024 × 8 GPUs)", ""]
    gang = [member("big", i, 1024, SHAPES[1][2], SHAPES[1][3]) for i in range(1024)]
    waiting = []
    for pod_json in gang[:-1]:
        pod = parse_pod(pod_json)
        t0 = time.perf_counter()
        engine.filter(pod, names)
        waiting.append(time.perf_counter() - t0)
    baseline_engine = loaded_engine(nodes, load)
    baseline = filter_latencies(baseline_engine, names, 300, seed=1)
    pending = filter_latencies(engine, names, 300, seed=1)
    last = parse_pod(gang[-1])
    t0 = time.perf_counter()
    answer = engine.filter(last, names)
    completing = time.perf_counter() - t0
    reserved = len(engine.gates.gangs.reservations()[0].members) if engine.gates.gangs.reservations() else 0
    held = filter_latencies(engine, names, 300, seed=1)
    t0 = time.perf_counter()
    again = [engine.filter(parse_pod(p), names) for p in gang[:100]]
    member_after = (time.perf_counter() - t0) / 100
    if not answer.passed or not all(len(a.passed) == 1 for a in again):
        raise SystemExit(f"the 1,024-member gang did not fit this cluster ({answer.unresolvable.get(names[0])}); "
                         "use more --nodes or less --load")
    lines += ["| call | time |", "|---|---|",
              f"| a waiting member's filter (\"k of 1024 members pending\"), median of 1,023 | "
              f"{ms(statistics.median(waiting))} |",
              f"| the completing member's filter: plan + reserve {reserved:,} members in one step | "
              f"{ms(completing)} |",
              f"| a reserved member's filter (its planned node passes), mean of 100 | {ms(member_after)} |",
              "", "## An ordinary pod's filter while a gang is pending (300 pods of the latency mix)", "",
              "| books | p50 | p99 |", "|---|---|---|",
              f"| no gang | {ms(percentile(baseline, 50))} | {ms(percentile(baseline, 99))} |",
              f"| 1,024-member gang waiting for its last member | {ms(percentile(pending, 50))} | "
              f"{ms(percentile(pending, 99))} |",
              f"| its reservation held (8,192 GPUs) | {ms(percentile(held, 50))} | {ms(percentile(held, 99))} |"]
    header = ["# Gang planning and filter latency", "",
              describe().rstrip(), f"- Cluster: {nodes_count:,} nodes (benchmarks/big_cluster.py), 5 zones, racks of "
              f"40; {load:,} pods of the latency mix placed first ({used:,} GPUs in use); set-up {setup:.0f} s",
              f"- `plan_gang` runs: {repeat} per shape; policy: the default ({engine.settings.policy})",
              "- The machine is shared and noisy: treat these as orders of magnitude; the lead re-runs final numbers.",
              ""]
    return "\n".join(header + lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--load", type=int, default=2000, help="pods placed before measuring")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gangs.md"))
    args = parser.parse_args()
    report = run(args.nodes, args.load, args.repeat)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
