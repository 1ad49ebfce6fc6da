"""Simulator speed: one FGD-protocol run per policy, the same over HTTP, and the demo.

    python -m benchmarks.simulator_speed [--sweep out/sweep] [--http-pods 3000] [--repeat 3]

Targets (issue 16): openb default, one seed, in-process <= 3 s; the 1,020-run sweep <= 30 min on
2 cores (issue 5's, still kept: `make demo` < 2 minutes on 2 cores). The sweep's own timing is
read from its `timings.json` (run `gpusched simulate sweep ... --jobs 2 --out DIR` first); without
one, that section says so and the rest is written all the same. Timings on a shared machine are
noisy: the results file records the machine, the date and the load average.
Results go to benchmarks/results/simulator-speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.machine import describe, write_results
from simulator import protocol_fgd, replay
from simulator.generator import generate
from simulator.sweep import FGD_POLICIES
from simulator.traces.alibaba import load_pods
from simulator.traces.nodes import load_nodes

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "alibaba-gpu-v2023" / "csv"
RESULTS = ROOT / "benchmarks" / "results" / "simulator-speed.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "out" / "sweep", help="a finished sweep's output folder")
    parser.add_argument("--http-pods", type=int, default=3000, help="arrivals timed over HTTP (first N)")
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs per policy (the best counts)")
    args = parser.parse_args()
    nodes = load_nodes(TRACES / "openb_node_list_gpu_node.csv")
    pods = load_pods(TRACES / "openb_pod_list_default.csv")
    lines = ["# Simulator speed", "", describe(), f"- Load average when starting: {os.getloadavg()[0]:.2f}", "",
             "## FGD protocol, openb default, seed 42, one run (in-process)", "",
             "| policy | pods | best of runs (s) | all runs (s) | pods/s |", "|---|---|---|---|---|"]
    for policy in (*FGD_POLICIES, "fgd-plus"):  # the sweep's six, and the default policy
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = protocol_fgd.run(nodes, pods, trace="default", policy=policy, seed=42)
            times.append(time.perf_counter() - started)
        lines.append(f"| {policy} | {result.pods} | {min(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} "
                     f"| {result.pods / min(times):.0f} |")
        print(lines[-1], flush=True)

    started = time.perf_counter()
    result = protocol_fgd.run(nodes, pods, trace="default", policy="fgd", seed=42, via_http=True, limit=args.http_pods)
    http = time.perf_counter() - started
    lines += ["", f"Over HTTP (the real extender on loopback, every node a candidate): the first {result.pods} "
              f"arrivals with fgd took {http:.1f} s ({result.pods / http:.0f} pods/s, filter + prioritize + bind)."]

    nodes_g, scenario = generate(7)
    started = time.perf_counter()
    for policy in ("fgd", "bestfit"):
        replay.run(nodes_g, scenario, policy=policy, seed=7, via_http=True)
    demo = time.perf_counter() - started
    lines += ["", "## The demo", "",
              f"`make demo`'s work (generated workload, seed 7: {len(scenario.jobs)} jobs on "
              f"{sum(len(n.gpus) for n in nodes_g)} GPUs, under fgd and bestfit, over HTTP): {demo:.1f} s "
              "(plus interpreter start-up and plotting)."]

    timings = args.sweep / "timings.json"
    t = _sweep_timings(timings)
    if t is not None:
        per_run = sorted(t["run_seconds"].values())
        what = "17 traces × 6 policies × 10 seeds" if t["runs"] == 1020 else "not the full sweep"
        lines += ["", "## The full sweep", "",
                  f"{t['runs']} runs ({what}), {t['jobs']} worker processes: "
                  f"{t['wall_seconds'] / 60:.1f} min wall clock; per run median {per_run[len(per_run) // 2]:.1f} s, "
                  f"max {per_run[-1]:.1f} s. Machine: {t['machine']['cpus']} CPUs, load average "
                  f"{t['machine']['load_average_1m']} at the end, {t['machine']['date']}."]
    else:
        lines += ["", "## The full sweep", "", f"not measured here ({_shown(timings)} not found or unreadable)."]
    lines += ["", "## Against the targets", "",
              "openb default, one seed, in-process: <= 3 s (issue 16). The 1,020-run sweep: <= 30 min on 2 cores. "
              "`make demo`: < 2 minutes on 2 cores. The machine is shared with other work; each number above "
              "is wall clock on it as it was (see the load averages)."]
    write_results(RESULTS, "\n".join(lines))
    print(f"wrote {RESULTS}")


def _sweep_timings(path: Path) -> dict | None:
    """A finished sweep's timings, or None when there is none (or it is not one: a half-written file)."""
    try:
        t = json.loads(path.read_text())
        return t if t.get("run_seconds") and {"runs", "jobs", "wall_seconds", "machine"} <= t.keys() else None
    except (OSError, ValueError, AttributeError):
        return None


def _shown(path: Path) -> str:
    """A path as the results file shows it: relative to the project where it can be."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
