"""What pods waiting for reclaim cost the extender's event loop, in a full cluster.

    .venv/bin/python -m benchmarks.pending_reclaim [--nodes 5000] [--plan-nodes 500]

In a cluster the pod watch hands every pending pod of gpusched's scheduler to
`Engine.observe_pending` (on each of its events, and every 30 s for all of them); the reclaim plan
(`reclaim_plans.current_plans`) is computed for `GET /state`, each `/metrics` scrape and each
reclaim round. Both run on the loop that also answers kube-scheduler. Measured in-process:

1. `observe_pending`, per pod: `--nodes` 8-GPU nodes, all taken by borrowed 8-GPU pods of a team
   without a guarantee; 2,000 pending 1-GPU pods of a guaranteed team (all end up waiting);
2. `current_plans` on `--plan-nodes` such nodes with 10, 100 and 500 pods waiting: the worst case
   for the planner, every node holding a candidate victim.

Writes `benchmarks/results/reclaim.md`. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.machine import describe
from scheduler.core.engine import Engine
from scheduler.core.model import Gpu, Node
from scheduler.core.quotas import QuotaConfig, Team
from scheduler.core.reclaim_plans import current_plans
from scheduler.core.request import parse_pod

QUOTAS = QuotaConfig((Team("ml", 10_000_000, None),))


def pod(name: str, namespace: str, gpus: int) -> dict:
    limits = {"nvidia.com/gpu": str(gpus), "cpu": "1", "memory": "1Gi"}
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"{namespace}-{name}"},
            "spec": {"containers": [{"name": "main", "resources": {"limits": limits, "requests": limits}}]}}


def full_cluster(count: int) -> Engine:
    nodes = [Node(f"n{i:05d}", 96_000, 1 << 20, tuple(Gpu(g, f"GPU-{i}-{g}", "NVIDIA-A100-SXM4-80GB", 81920)
                                                      for g in range(8))) for i in range(count)]
    engine = Engine(nodes, quotas=QUOTAS)
    for i, node in enumerate(nodes):
        request = parse_pod(pod(f"f{i}", "other", 8))
        engine.observe(request)
        engine.place(request, node.name)  # team "other" has no guarantee: every one of them borrows
    return engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--plan-nodes", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "reclaim.md"))
    args = parser.parse_args()

    engine = full_cluster(args.nodes)
    waiting = [parse_pod(pod(f"p{i}", "ml", 1)) for i in range(2000)]
    started = time.perf_counter()
    for request in waiting:
        engine.observe_pending(request)
    first = (time.perf_counter() - started) / len(waiting)
    started = time.perf_counter()
    for request in waiting:
        engine.observe_pending(request)
    again = (time.perf_counter() - started) / len(waiting)
    assert len(engine.gates.waiting_for_reclaim) == len(waiting)

    plans = []
    for count in (10, 100, 500):
        small = full_cluster(args.plan_nodes)
        for request in waiting[:count]:
            small.observe_pending(request)
        started = time.perf_counter()
        made = current_plans(small.gates)
        plans.append((count, time.perf_counter() - started, sum(len(p.victims) for p in made)))

    lines = ["# Pods waiting for reclaim: what they cost the event loop", "", describe().rstrip(),
             "- The machine is shared and noisy: treat these as orders of magnitude.", "",
             f"## `Engine.observe_pending`, {args.nodes:,} full 8-GPU nodes, 2,000 pending 1-GPU pods", "",
             "| call | per pod |", "|---|---|",
             f"| first judgement (the pod ends up waiting) | {first * 1e6:.1f} µs |",
             f"| again (already waiting: the sweep every 30 s) | {again * 1e6:.1f} µs |", "",
             f"## `current_plans`, {args.plan_nodes:,} full 8-GPU nodes, each holding one borrowed pod", "",
             "| pods waiting | time | victims planned |", "|---|---|---|"]
    lines += [f"| {count} | {seconds * 1e3:,.0f} ms | {victims} |" for count, seconds, victims in plans]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
