"""`gpusched explain --cluster FILE --pod POD.yaml`: per node, does the pod fit, its score, and why."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from scheduler.cli.errors import UsageError
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.policies import DEFAULT_POLICY, POLICIES
from scheduler.core.request import InvalidRequest, parse_pod
from scheduler.extender.wire import scale_scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", required=True, help="cluster file (YAML or JSON)")
    parser.add_argument("--pod", metavar="POD.yaml", required=True, help="the pod manifest to place")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES), help="default scoring policy")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_pod(path: str) -> dict:
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    pods = [d for d in docs if isinstance(d, dict) and d.get("kind", "Pod") == "Pod"]
    if len(pods) != 1:
        raise UsageError(f"{path}: expected exactly one Pod, found {len(pods)}")
    pod = pods[0]
    pod.setdefault("metadata", {}).setdefault("uid", "explain")
    return pod


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_cluster(args.cluster)
    except ClusterFileError as e:
        raise UsageError(str(e)) from None
    try:
        pod = parse_pod(load_pod(args.pod))
    except InvalidRequest as e:
        raise UsageError(f"{args.pod}: invalid GPU request: {e}") from None
    engine = Engine(spec.nodes, settings=EngineSettings(policy=args.policy))
    for alloc in spec.pods:
        engine.restore(alloc)
    verdicts = engine.explain(pod)
    scaled = dict(scale_scores([(v.node, v.score) for v in verdicts]))
    policy = pod.policy or args.policy
    if args.json:
        print(json.dumps({"pod": pod.key, "policy": policy, "nodes": [
            {"node": v.node, "fits": v.fits, "score": scaled[v.node] if v.fits else None, "rawScore": v.score,
             "reason": v.reason, "unresolvable": v.unresolvable, "gpus": list(v.gpus)} for v in verdicts]}, indent=2))
        return 0
    table = Table(title=f"{pod.key} with policy {policy}", title_justify="left")
    for column in ("node", "fits", "score", "raw", "GPUs it would get", "why"):
        table.add_column(column)
    best = max((scaled[v.node] for v in verdicts if v.fits), default=None)
    for v in sorted(verdicts, key=lambda v: (not v.fits, -(v.score or 0), v.node)):
        mark = "[green]yes[/]" if v.fits else ("[red]never[/]" if v.unresolvable else "[yellow]not now[/]")
        score = str(scaled[v.node]) + (" (best)" if v.fits and scaled[v.node] == best else "") if v.fits else "-"
        raw = f"{v.score:g}" if v.score is not None else "-"
        table.add_row(v.node, mark, score, raw, ", ".join(v.gpus) or "-", v.reason)
    Console().print(table)
    return 0
