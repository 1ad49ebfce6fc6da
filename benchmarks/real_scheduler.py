"""Pods per second through the real kube-scheduler: gpusched as its extender against the stock scheduler.

    python -m benchmarks.real_scheduler [--nodes 500] [--pods 1000] [--rounds 2] [--out benchmarks/results/real-scheduler.md]

Needs `../shared/k8s/local-control-plane` (etcd, kube-apiserver and kube-scheduler v1.28 on loopback).
The same cluster (`--nodes` nodes of 8 GPUs) and the same pods (`--pods` single-GPU pods of the
`gpu-scheduler` profile) are scheduled in alternating rounds by two kube-schedulers:
- stock: the shipped KubeSchedulerConfiguration with its `extenders:` removed (`nvidia.com/gpu`
  a plain extended resource, counted by kube-scheduler alone, bound by kube-scheduler itself);
- stock-unthrottled: the same with `clientConnection` at 1,000 QPS (burst 2,000): kube-scheduler's
  default client limit (50 QPS, burst 100) paces its own Bindings, and gpusched's binds, made by
  the extender, are not paced by it, so the plain stock figure flatters the comparison;
- gpusched: the shipped configuration as it is (filter, prioritize and bind through the extender).
Each round creates every pod while no scheduler runs, then starts the scheduler and times from
the first pod bound to the last (the scheduler's start and leader election are left out), and
counts kube-scheduler's extender timeouts (its log) and binds answered late (`gpusched_bind_late_total`).
The webhook and the extender process run in both rounds, so pod creation is the same for both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from scheduler.extender.tls import issue_webhook_certificate
from tests.cluster.cluster import node_object, pod_object
from tests.cluster.controlplane import ControlPlane, find_launcher
from tests.cluster.install import NAMESPACE, install, render, scheduler_config
from tests.cluster.replica import Replica, Replicas

BENCH_NAMESPACE = "bench"
SCHEDULERS = ("stock", "stock-unthrottled", "gpusched")


@dataclass(frozen=True)
class Round:
    scheduler: str
    pods: int
    seconds: float
    timeouts: int
    late_binds: float

    @property
    def ms_per_pod(self) -> float:
        return 1000 * self.seconds / max(1, self.pods - 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each scheduler, alternating")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/real-scheduler.md"))
    args = parser.parse_args(argv)
    if find_launcher() is None:
        print("benchmarks.real_scheduler: needs ../shared/k8s/local-control-plane", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gpusched-bench-") as home:
        rounds = run(Path(home), nodes=args.nodes, pods=args.pods, rounds=args.rounds)
    report = render_report(rounds, nodes=args.nodes, pods=args.pods)
    args.out.write_text(report)
    print(report)
    return 0


def run(home: Path, *, nodes: int, pods: int, rounds: int) -> list[Round]:
    plane = ControlPlane(home / "plane")
    plane.start()
    try:
        certificate = issue_webhook_certificate(service="gpusched", namespace=NAMESPACE, extra_names=("127.0.0.1",))
        rendered = render(plane)
        install(plane, rendered, webhook_port=1, ca_pem=certificate.ca_pem)
        plane.kubectl("create", "namespace", BENCH_NAMESPACE)
        replicas = Replicas(plane, rendered, certificate, home)
        extender = replicas.extender("bench").start()
        replicas.serve_webhook_from(Replica("bench", extender, home / "none"))
        _parallel(lambda i: _add_node(plane, i), range(nodes))
        configs = {"gpusched": scheduler_config(rendered, extender_port=extender.port, path=home / "with.yaml"),
                   "stock": _stock_config(rendered, home / "stock.yaml"),
                   "stock-unthrottled": _stock_config(rendered, home / "unthrottled.yaml", qps=1000)}
        out = []
        try:
            for index in range(rounds):
                for name in SCHEDULERS:
                    out.append(_round(plane, replicas, extender, name, configs[name], pods, f"{name}-{index}"))
                    print(f"{name}: {pods} pods in {out[-1].seconds:.1f}s ({out[-1].ms_per_pod:.1f} ms/pod), "
                          f"{out[-1].timeouts} timeouts", flush=True)
        finally:
            extender.kill()
        return out
    finally:
        plane.stop()


def _round(plane: ControlPlane, replicas: Replicas, extender, name: str, config: Path, pods: int,
           place: str) -> Round:
    plane.kubectl("-n", BENCH_NAMESPACE, "delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false")
    _wait(lambda: _count(plane, "") == 0, 120)
    plane.kubectl("-n", NAMESPACE, "delete", "lease", "gpu-scheduler", "--ignore-not-found")
    late_before = _late(extender.metrics())
    _parallel(lambda i: plane.core.create_namespaced_pod(BENCH_NAMESPACE, pod_object(f"p-{i}", BENCH_NAMESPACE,
                                                                                       gpus=1)), range(pods))
    log = plane.start_scheduler(place, config, replicas.kubeconfig)
    _wait(lambda: _count(plane, "spec.nodeName!=") > 0, 120)
    first = time.monotonic()
    _wait(lambda: _count(plane, "spec.nodeName=") == 0, 600)
    seconds = time.monotonic() - first
    plane.stop_scheduler(place)
    text = log.read_text(errors="replace")
    timeouts = len(re.findall(r"Client\.Timeout|context deadline exceeded", text))
    return Round(name, pods, seconds, timeouts, _late(extender.metrics()) - late_before)


def _stock_config(rendered, path: Path, *, qps: int | None = None) -> Path:
    config = rendered.scheduler_config
    del config["extenders"]
    if qps is not None:
        config["clientConnection"] = {"qps": qps, "burst": 2 * qps}
    path.write_text(yaml.safe_dump(config))
    return path


def _add_node(plane: ControlPlane, index: int) -> None:
    obj = node_object(f"node-{index:04d}")
    status = obj.pop("status")
    plane.core.create_node(obj)
    plane.core.patch_node_status(obj["metadata"]["name"], {"status": status})
    plane.core.patch_node(obj["metadata"]["name"], {"spec": {"taints": None}})


def _count(plane: ControlPlane, selector: str) -> int:
    """Pods in the namespace matching a field selector, read cheaply (one item and a count)."""
    answer = plane.core.list_namespaced_pod(BENCH_NAMESPACE, field_selector=selector, limit=1)
    return len(answer.items) + (answer.metadata.remaining_item_count or 0)


def _late(metrics: str) -> float:
    found = re.search(r"^gpusched_bind_late_total ([0-9.e+]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _parallel(work, items) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, items))


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark round did not finish in time")
        time.sleep(0.1)


def render_report(rounds: list[Round], *, nodes: int, pods: int) -> str:
    cpu = _cpu_model()
    by = {name: [r for r in rounds if r.scheduler == name] for name in SCHEDULERS}
    ms = {name: statistics.median(r.ms_per_pod for r in rs) for name, rs in by.items()}
    ratio = ms["gpusched"] / ms["stock"]
    fair = ms["gpusched"] / ms["stock-unthrottled"]
    lines = [
        "# Pods per second through the real kube-scheduler (issue 12)",
        "",
        f"Measured {dt.date.today().isoformat()} on {cpu}, {_cores()} cores, Python {platform.python_version()}; "
        "etcd 3.5.1, kube-apiserver and kube-scheduler v1.28.0 on loopback (`../shared/k8s`), all on the same cores "
        "as gpusched. Written by `python -m benchmarks.real_scheduler`.",
        "",
        f"{pods} single-GPU pods of the `gpu-scheduler` profile on {nodes} nodes x 8 GPUs, created while no scheduler "
        "runs; timed from the first pod bound to the last. `stock`: the shipped KubeSchedulerConfiguration without "
        "`extenders:`; `gpusched`: as shipped (filter, prioritize, bind through the extender).",
        "",
        "| round | scheduler | seconds | ms per pod | pods/s | extender timeouts | late binds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for index, r in enumerate(rounds):
        lines.append(f"| {index + 1} | {r.scheduler} | {r.seconds:.1f} | {r.ms_per_pod:.1f} | "
                     f"{(r.pods - 1) / r.seconds:.0f} | {r.timeouts} | {r.late_binds:.0f} |")
    def verdict(value: float) -> str:
        return "met" if value <= 1.5 else "NOT met"
    lines += ["", f"Median time per pod: stock {ms['stock']:.1f} ms, stock-unthrottled {ms['stock-unthrottled']:.1f} ms, "
              f"gpusched {ms['gpusched']:.1f} ms.", "",
              f"- gpusched / stock (as shipped, kube-scheduler's default 50 QPS client): **{ratio:.2f}** "
              f"(target <= 1.5: {verdict(ratio)})",
              f"- gpusched / stock-unthrottled (kube-scheduler's binds not paced): **{fair:.2f}** "
              f"(target <= 1.5: {verdict(fair)})",
              f"- extender timeouts in all gpusched rounds: {sum(r.timeouts for r in by['gpusched'])} (target 0); "
              f"binds answered after kube-scheduler's 5 s httpTimeout: "
              f"{sum(r.late_binds for r in by['gpusched']):.0f}", ""]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
