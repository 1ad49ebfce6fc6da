"""`gpusched demo`: serve the bundled mixed cluster over real HTTP on loopback and drive it with a
short scripted workload the way kube-scheduler would, printing where each pod went and why."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scheduler.cli.errors import UsageError
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.core.policies import DEFAULT_POLICY, POLICIES

EXAMPLE_CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "mixed.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", default=str(EXAMPLE_CLUSTER), help="cluster file")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES))
    parser.add_argument("--out", metavar="DIR", default="out", help="where to write the placements")


def _pod(name: str, limits: dict, annotations: dict | None = None, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "ml", "uid": f"demo-{name}", "annotations": annotations or {},
                         "labels": labels or {}},
            "spec": {"schedulerName": "gpu-scheduler", "containers": [
                {"name": "main", "resources": {"limits": limits, "requests": limits}}]},
            "status": {"phase": "Pending"}}


def workload() -> list[tuple[str, dict]]:
    """(what it shows, pod) in arrival order."""
    share = {"cpu": "4", "memory": "16Gi", "gpusched.io/gpu-milli": "500", "gpusched.io/gpu-memory": "20480"}
    return [
        ("8 whole GPUs: a full NVLink node", _pod("train-8gpu", {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"})),
        ("4 whole A100/H100 GPUs, NVLink-connected", _pod("train-4gpu", {"cpu": "32", "memory": "256Gi",
                                                                          "nvidia.com/gpu": "4"},
                                                         {"gpusched.io/gpu-model": "A100*,H100*"})),
        ("half a GPU, A100 or H100 only", _pod("finetune-a", share, {"gpusched.io/gpu-model": "A100*,H100*"})),
        ("the other half of that GPU", _pod("finetune-b", share, {"gpusched.io/gpu-model": "A100*,H100*"})),
        ("an MPS share (enforced limits)", _pod("infer-mps-0", {"cpu": "2", "memory": "8Gi",
                                                                "gpusched.io/gpu-milli": "300",
                                                                "gpusched.io/gpu-memory": "4096"},
                                                {"gpusched.io/sharing": "mps"})),
        ("a second MPS share packs beside it", _pod("infer-mps-1", {"cpu": "2", "memory": "8Gi",
                                                                    "gpusched.io/gpu-milli": "300",
                                                                    "gpusched.io/gpu-memory": "4096"},
                                                    {"gpusched.io/sharing": "mps"})),
        ("a small share, anything but T4", _pod("notebook-1", {"cpu": "2", "memory": "8Gi",
                                                               "gpusched.io/gpu-milli": "250"},
                                                {"gpusched.io/gpu-model": "!Tesla-T4"})),
        ("1 whole H100", _pod("eval-h100", {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
                              {"gpusched.io/gpu-model": "H100*"})),
        ("8 more whole GPUs: only fragments left", _pod("train-8gpu-b", {"cpu": "64", "memory": "512Gi",
                                                                          "nvidia.com/gpu": "8"})),
        ("a CPU-only pod", _pod("etl", {"cpu": "16", "memory": "64Gi"})),
        ("invalid: whole GPUs and a share at once", _pod("bad-both", {"nvidia.com/gpu": "1",
                                                                      "gpusched.io/gpu-milli": "500"})),
        ("invalid: a share of 1500 milli", _pod("bad-milli", {"gpusched.io/gpu-milli": "1500"})),
    ]


async def _run(cluster_path: str, policy: str, out: Path, console: Console) -> list[dict]:
    from scheduler.extender.server import cluster_service, start
    from simulator.extender_client import ExtenderClient

    spec = load_cluster(cluster_path)
    service = cluster_service(spec, settings=EngineSettings(policy=policy))
    server = await start(service)
    console.print(f"gpusched extender on [bold]{server.url}[/] (policy {policy}); "
                  f"driving it as kube-scheduler would: filter, prioritize, bind\n")
    nodes = [n.name for n in spec.nodes]
    rows = []
    try:
        async with ExtenderClient(server.url) as client:
            for what, pod in workload():
                cycle = await client.schedule_one(pod, nodes)
                state = service.engine.allocations.get(pod["metadata"]["uid"])
                if cycle.node:
                    gpus = ", ".join(state.gpu_uuids) if state and state.gpu_uuids else "-"
                    why = (f"score {cycle.scores[cycle.node]}/10, best of {len(cycle.scores)} feasible nodes"
                           if cycle.scores else "the only feasible node")
                else:
                    gpus = "-"
                    why = cycle.error or "0/{} nodes are available: {}".format(
                        len(nodes), ", ".join(f"{n} {r}" for r, n in sorted(cycle.reasons.items())))
                rows.append({"pod": cycle.pod, "shows": what, "node": cycle.node, "gpus": gpus, "why": why})
    finally:
        await server.close()
    return rows


def run(args: argparse.Namespace) -> int:
    console = Console(width=160) if not Console().is_terminal else Console()
    try:
        rows = asyncio.run(_run(args.cluster, args.policy, Path(args.out), console))
    except ClusterFileError as e:
        raise UsageError(str(e)) from None
    table = Table(title="where each pod went, and why", title_justify="left")
    for column in ("pod", "shows", "node", "GPUs", "why"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["pod"], r["shows"], r["node"] or "[red]pending[/]", r["gpus"], r["why"])
    console.print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo-placements.json").write_text(json.dumps(rows, indent=2))
    console.print(f"\nplacements written to [bold]{out / 'demo-placements.json'}[/]")
    return 0


